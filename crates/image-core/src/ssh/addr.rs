//! [`HostAddr`]: a host as the command line names it, `[user@]host[:port]`,
//! with IPv6 addresses in brackets (`u@[::1]:2222`) or bare without a port
//! (`::1`). The one parser of every `--host` flag.
//!
//! ```
//! use image_core::ssh::{HostAddr, SshAuth};
//! let a: HostAddr = "builder@[fd00::7]:2222".parse()?;
//! assert_eq!((a.user.as_deref(), a.host.as_str(), a.port), (Some("builder"), "fd00::7", 2222));
//! let cfg = a.ssh_config("root", SshAuth::key_file("/tmp/id_ed25519"));
//! assert_eq!(cfg.name(), "builder@fd00::7:2222");
//! # Ok::<(), String>(())
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use super::config::{SshAuth, SshConfig};

/// `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// The login user, when one is given.
    pub user: Option<String>,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// TCP port ([`HostAddr::DEFAULT_PORT`] when none is given).
    pub port: u16,
}

impl HostAddr {
    /// SSH's port.
    pub const DEFAULT_PORT: u16 = 22;

    /// Parses `[user@]host[:port]`. An IPv6 address takes brackets when a
    /// port follows (`[::1]:2222`); the port is 1 to 65535. Errors name the
    /// input and what is wrong with it.
    pub fn parse(s: &str) -> Result<HostAddr, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some(("", _)) => return Err(format!("bad host `{s}`: empty user before `@`")),
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s),
        };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| format!("bad host `{s}`: `[` without its `]`"))?;
            if h.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "bad host `{s}`: `{h}` in brackets is not an IPv6 address"
                ));
            }
            let port = match after {
                "" => None,
                a => Some(a.strip_prefix(':').ok_or_else(|| {
                    format!("bad host `{s}`: `{a}` after `]` (expected `:PORT`)")
                })?),
            };
            (h, port)
        } else if rest.matches(':').count() > 1 {
            // A bare IPv6 address has no room for a port.
            if rest.parse::<Ipv6Addr>().is_err() {
                return Err(format!(
                    "bad host `{s}`: not an IPv6 address; with a port, write it in brackets ([::1]:2222)"
                ));
            }
            (rest, None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("bad host `{s}`: empty host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bad host `{s}`: `{host}` is not a host name"));
        }
        let port = match port {
            None => Self::DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("bad port in `{s}`: `{p}` is not 1 to 65535")),
            },
        };
        Ok(HostAddr {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// The login user, or `default`.
    pub fn user_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.user.as_deref().unwrap_or(default)
    }

    /// An [`SshConfig`] (with its defaults) for this host, logging in as its
    /// user or `default_user`.
    pub fn ssh_config(&self, default_user: &str, auth: SshAuth) -> SshConfig {
        SshConfig::new(
            self.host.clone(),
            self.port,
            self.user_or(default_user),
            auth,
        )
    }
}

impl FromStr for HostAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostAddr::parse(s)
    }
}

impl fmt::Display for HostAddr {
    /// `user@host:port`, with brackets around an IPv6 address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (Option<String>, String, u16) {
        let a = HostAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (a.user, a.host, a.port)
    }

    fn t(u: Option<&str>, h: &str, p: u16) -> (Option<String>, String, u16) {
        (u.map(String::from), h.to_string(), p)
    }

    #[test]
    fn names_and_ipv4() {
        assert_eq!(ok("h"), t(None, "h", 22));
        assert_eq!(ok("u@h:2222"), t(Some("u"), "h", 2222));
        assert_eq!(
            ok("builder@127.0.0.1:2222"),
            t(Some("builder"), "127.0.0.1", 2222)
        );
        assert_eq!(ok("example.com:22"), t(None, "example.com", 22));
    }

    #[test]
    fn ipv6_in_brackets_and_bare() {
        assert_eq!(ok("u@[::1]:2222"), t(Some("u"), "::1", 2222));
        assert_eq!(ok("[::1]:22"), t(None, "::1", 22));
        assert_eq!(ok("[fd00::7]"), t(None, "fd00::7", 22));
        assert_eq!(ok("u@[fd00::7]"), t(Some("u"), "fd00::7", 22));
        assert_eq!(ok("::1"), t(None, "::1", 22));
        assert_eq!(ok("u@fe80::1:2"), t(Some("u"), "fe80::1:2", 22));
        assert_eq!(
            HostAddr::parse("u@[::1]:2222").unwrap().to_string(),
            "u@[::1]:2222"
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (s, want) in [
            ("u@[::1:2222", "without its `]`"),
            ("[::1]2222", "after `]`"),
            ("[h]:22", "not an IPv6 address"),
            ("[]:22", "not an IPv6 address"),
            ("h:1:2", "in brackets"),
            ("@h", "empty user"),
            (":22", "empty host"),
            ("u@", "empty host"),
            ("h:x", "bad port in `h:x`"),
            ("h:0", "not 1 to 65535"),
            ("root@h:99999", "bad port in `root@h:99999`"),
            ("[::1]:", "bad port"),
            ("a b", "not a host name"),
        ] {
            let e = HostAddr::parse(s).expect_err(s);
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
