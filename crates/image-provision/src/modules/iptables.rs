//! `iptables` (ansible.builtin): one rule, a chain's policy, a flush, or a
//! chain's presence, in ansible's decision order (flush, else policy, else
//! chain delete/create when no rule is given, else the rule: `iptables -C`
//! decides, then `-A`/`-I`/`-D`). The rule is built in ansible's argument
//! order (`construct_rule`), so the returned `rule` is the same text. One
//! round trip per run; `ip_version: both` runs iptables and ip6tables.

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use super::{json_to_string, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `iptables` module.
pub struct Iptables;

const PARAMS: &[&str] = &[
    "table",
    "state",
    "action",
    "ip_version",
    "chain",
    "rule_num",
    "protocol",
    "wait",
    "source",
    "to_source",
    "destination",
    "to_destination",
    "match",
    "tcp_flags",
    "jump",
    "gateway",
    "log_prefix",
    "log_level",
    "goto",
    "in_interface",
    "out_interface",
    "fragment",
    "set_counters",
    "source_port",
    "destination_port",
    "destination_ports",
    "to_ports",
    "set_dscp_mark",
    "set_dscp_mark_class",
    "comment",
    "ctstate",
    "src_range",
    "dst_range",
    "match_set",
    "match_set_flags",
    "limit",
    "limit_burst",
    "uid_owner",
    "gid_owner",
    "reject_with",
    "icmp_type",
    "syn",
    "flush",
    "policy",
    "chain_management",
    "numeric",
];

#[async_trait]
impl Module for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }
    fn params(&self) -> &'static [&'static str] {
        PARAMS
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let table = args.choice(
            "table",
            &["filter", "nat", "mangle", "raw", "security"],
            "filter",
        )?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let action = args.choice("action", &["append", "insert"], "append")?;
        let ipv = args.choice("ip_version", &["ipv4", "ipv6", "both"], "ipv4")?;
        let flush = args.bool_or("flush", false)?;
        let policy = args.opt_str("policy");
        if let Some(p) = &policy {
            if !["ACCEPT", "DROP", "QUEUE", "RETURN"].contains(&p.as_str()) {
                return Err(ModuleError::Arg(format!(
                    "iptables: `policy` must be one of ACCEPT, DROP, QUEUE, RETURN, got `{p}`"
                )));
            }
            if flush {
                return Err(ModuleError::Arg(
                    "iptables: parameters are mutually exclusive: flush|policy".into(),
                ));
            }
        }
        let chain = args.opt_str("chain");
        if !flush && chain.is_none() {
            return Ok(ModuleResult::fail(
                "flush is False but all of the following are missing: chain",
            ));
        }
        let mut jump = args.opt_str("jump");
        if args.get("log_prefix").is_some() || args.get("log_level").is_some() {
            match jump.as_deref() {
                None => jump = Some("LOG".into()),
                Some("LOG") => {}
                Some(_) => {
                    return Ok(ModuleResult::fail(
                        "Logging options can only be used with the LOG jump target.",
                    ))
                }
            }
        }
        let rule = construct_rule(args, jump.as_deref(), &ipv)?;
        let rule_text = rule.join(" ");
        let chain_s = chain.clone().unwrap_or_default();
        let head = |bin: &str, act: &str| {
            let mut v = vec![
                bin.to_string(),
                "-t".into(),
                table.clone(),
                act.into(),
                chain_s.clone(),
            ];
            if act == "-I" {
                if let Some(n) = args.opt_str("rule_num") {
                    v.push(n);
                }
            }
            if let Some(w) = args.opt_str("wait") {
                v.push("-w".into());
                v.push(w);
            }
            v
        };
        let cmd = |v: Vec<String>| v.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
        let with_rule = |mut v: Vec<String>| {
            v.extend(rule.iter().cloned());
            cmd(v)
        };
        let numeric = if args.bool_or("numeric", false)? {
            " --numeric"
        } else {
            ""
        };
        let chain_mgmt = args.bool_or("chain_management", false)?;
        let bins: Vec<&str> = match ipv.as_str() {
            "ipv4" => vec!["iptables"],
            "ipv6" => vec!["ip6tables"],
            _ => vec!["iptables", "ip6tables"],
        };
        let mut body = String::new();
        for bin in bins {
            body.push_str(&format!(
                "command -v {bin} >/dev/null 2>&1 || fail 'Failed to find required executable \"{bin}\" in paths: '\"$PATH\"\n"
            ));
            if flush {
                body.push_str(&format!("C=1; do_ {}\n", cmd(head(bin, "-F"))));
            } else if let Some(p) = &policy {
                body.push_str(&format!(
                    "_l=$({list}{numeric} 2>&1) || fail \"$_l\"\n_p=$(printf '%s\\n' \"$_l\" | head -n1 | sed -n 's/.*(policy \\([A-Z]*\\)).*/\\1/p')\n[ -n \"$_p\" ] || fail \"Can't detect current policy\"\nif [ \"$_p\" != {p} ]; then C=1; do_ {set} {p}; fi\n",
                    list = cmd(head(bin, "-L")),
                    set = cmd(head(bin, "-P")),
                    p = q(p),
                ));
            } else if state == "absent" && rule.is_empty() {
                body.push_str(&format!(
                    "if {list}{numeric} >/dev/null 2>&1; then C=1; {del}; fi\n",
                    list = cmd(head(bin, "-L")),
                    del = if chain_mgmt {
                        format!("do_ {}", cmd(head(bin, "-X")))
                    } else {
                        ":".into()
                    }
                ));
            } else if state == "present" && rule.is_empty() {
                body.push_str(&format!(
                    "if ! {list}{numeric} >/dev/null 2>&1; then C=1; {create}; fi\n",
                    list = cmd(head(bin, "-L")),
                    create = if chain_mgmt {
                        format!("do_ {}", cmd(head(bin, "-N")))
                    } else {
                        ":".into()
                    }
                ));
            } else {
                let check = with_rule(head(bin, "-C"));
                let apply = if state == "present" {
                    with_rule(head(bin, if action == "insert" { "-I" } else { "-A" }))
                } else {
                    with_rule(head(bin, "-D"))
                };
                let want = u8::from(state == "present");
                body.push_str(&format!(
                    "if {check} >/dev/null 2>&1; then _has=1; else _has=0; fi\nif [ $_has != {want} ]; then C=1; do_ {apply}; fi\n"
                ));
            }
        }
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, "iptables");
        r.data.insert("ip_version".into(), json!(ipv));
        r.data.insert("table".into(), json!(table));
        r.data
            .insert("chain".into(), chain.map_or(Json::Null, Json::String));
        r.data.insert("flush".into(), json!(flush));
        r.data.insert("rule".into(), json!(rule_text));
        r.data.insert("state".into(), json!(state));
        r.data.insert("chain_management".into(), json!(chain_mgmt));
        r.data.insert(
            "wait".into(),
            args.opt_str("wait").map_or(Json::Null, Json::String),
        );
        Ok(r)
    }
}

/// ansible's `construct_rule`, argument for argument.
fn construct_rule(args: &Args, jump: Option<&str>, ipv: &str) -> Result<Vec<String>, ModuleError> {
    let mut rule: Vec<String> = Vec::new();
    let s = |k: &str| args.opt_str(k);
    fn param(rule: &mut Vec<String>, v: Option<String>, flag: &str) {
        if let Some(v) = v {
            if let Some(rest) = v.strip_prefix('!') {
                rule.extend(["!".into(), flag.into(), rest.to_string()]);
            } else {
                rule.extend([flag.into(), v]);
            }
        }
    }
    fn matchflag(rule: &mut Vec<String>, v: Option<&str>, flag: &str, negatable: bool) {
        match v {
            Some("match") => rule.push(flag.into()),
            Some("negate") if negatable => rule.extend(["!".into(), flag.into()]),
            _ => {}
        }
    }
    let matches = args.list("match");
    let ctstate = args.list("ctstate");
    let dports = args.list("destination_ports");
    param(&mut rule, s("protocol"), "-p");
    param(&mut rule, s("source"), "-s");
    param(&mut rule, s("destination"), "-d");
    for m in &matches {
        param(&mut rule, Some(m.clone()), "-m");
    }
    if let Some(Json::Object(t)) = args.get("tcp_flags") {
        if let (Some(f), Some(fs)) = (t.get("flags"), t.get("flags_set")) {
            let join = |v: &Json| match v {
                Json::Array(a) => a.iter().map(json_to_string).collect::<Vec<_>>().join(","),
                o => json_to_string(o),
            };
            rule.extend(["--tcp-flags".into(), join(f), join(fs)]);
        }
    }
    param(&mut rule, jump.map(str::to_string), "-j");
    if jump.is_some_and(|j| j.eq_ignore_ascii_case("tee")) {
        if s("gateway").is_none() {
            return Err(ModuleError::Arg(
                "iptables: jump is TEE but all of the following are missing: gateway".into(),
            ));
        }
        param(&mut rule, s("gateway"), "--gateway");
    }
    param(&mut rule, s("log_prefix"), "--log-prefix");
    param(&mut rule, s("log_level"), "--log-level");
    param(&mut rule, s("to_destination"), "--to-destination");
    if !dports.is_empty() {
        rule.extend([
            "-m".into(),
            "multiport".into(),
            "--dports".into(),
            dports.join(","),
        ]);
    }
    param(&mut rule, s("to_source"), "--to-source");
    param(&mut rule, s("goto"), "-g");
    param(&mut rule, s("in_interface"), "-i");
    param(&mut rule, s("out_interface"), "-o");
    param(&mut rule, s("fragment"), "-f");
    param(&mut rule, s("set_counters"), "-c");
    param(&mut rule, s("source_port"), "--source-port");
    param(&mut rule, s("destination_port"), "--destination-port");
    param(&mut rule, s("to_ports"), "--to-ports");
    let jump_is_dscp = jump.is_some_and(|j| j.eq_ignore_ascii_case("dscp"));
    for (k, flag) in [
        ("set_dscp_mark", "--set-dscp"),
        ("set_dscp_mark_class", "--set-dscp-class"),
    ] {
        if s(k).is_some() && jump.is_none() {
            return Err(ModuleError::Arg(format!(
                "iptables: missing parameter(s) required by '{k}': jump"
            )));
        }
        param(&mut rule, s(k), flag);
        if s(k).is_some() && !jump_is_dscp {
            rule.extend(["-j".into(), "DSCP".into()]);
        }
    }
    let syn = args.choice("syn", &["ignore", "match", "negate"], "ignore")?;
    matchflag(&mut rule, Some(&syn), "--syn", true);
    if matches.iter().any(|m| m == "conntrack") {
        if !ctstate.is_empty() {
            rule.extend(["--ctstate".into(), ctstate.join(",")]);
        }
    } else if matches.iter().any(|m| m == "state") {
        if !ctstate.is_empty() {
            rule.extend(["--state".into(), ctstate.join(",")]);
        }
    } else if !ctstate.is_empty() {
        rule.extend([
            "-m".into(),
            "conntrack".into(),
            "--ctstate".into(),
            ctstate.join(","),
        ]);
    }
    if matches.iter().any(|m| m == "iprange") {
        param(&mut rule, s("src_range"), "--src-range");
        param(&mut rule, s("dst_range"), "--dst-range");
    } else if s("src_range").is_some() || s("dst_range").is_some() {
        rule.extend(["-m".into(), "iprange".into()]);
        param(&mut rule, s("src_range"), "--src-range");
        param(&mut rule, s("dst_range"), "--dst-range");
    }
    if s("match_set").is_some() {
        if !matches.iter().any(|m| m == "set") {
            rule.extend(["-m".into(), "set".into()]);
        }
        param(&mut rule, s("match_set"), "--match-set");
        // ansible passes the flags as the "param" of append_match_flag:
        // only the literal value `match` would add anything.
        matchflag(
            &mut rule,
            Some("match"),
            &s("match_set_flags").unwrap_or_default(),
            false,
        );
        if s("match_set_flags").is_none() {
            rule.pop();
        }
    } else if matches.iter().any(|m| m == "set") {
        // nothing to add
    }
    if s("limit").is_some() || s("limit_burst").is_some() {
        rule.extend(["-m".into(), "limit".into()]);
    }
    param(&mut rule, s("limit"), "--limit");
    param(&mut rule, s("limit_burst"), "--limit-burst");
    for (k, flag) in [("uid_owner", "--uid-owner"), ("gid_owner", "--gid-owner")] {
        if let Some(v) = s(k) {
            rule.extend(["-m".into(), "owner".into()]);
            matchflag(&mut rule, Some(&v), flag, true);
            param(&mut rule, Some(v), flag);
        }
    }
    if jump.is_none() && s("reject_with").is_some() {
        rule.extend(["-j".into(), "REJECT".into()]);
    }
    param(&mut rule, s("reject_with"), "--reject-with");
    param(
        &mut rule,
        s("icmp_type"),
        if ipv == "ipv6" {
            "--icmpv6-type"
        } else {
            "--icmp-type"
        },
    );
    if let Some(c) = s("comment") {
        rule.extend(["-m".into(), "comment".into(), "--comment".into(), c]);
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_in_ansible_order() {
        let a = Args(
            json!({"chain": "INPUT", "protocol": "tcp", "destination_port": "6443",
                   "ctstate": ["NEW"], "jump": "ACCEPT", "comment": "api"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        let r = construct_rule(&a, Some("ACCEPT"), "ipv4").unwrap();
        assert_eq!(
            r.join(" "),
            "-p tcp -j ACCEPT --destination-port 6443 -m conntrack --ctstate NEW -m comment --comment api"
        );
    }
}
