//! `rpm_key`: imports a GPG key (a URL or a file on the target) into the rpm
//! database, or removes one (given by key id, URL or file). Whether a key is
//! imported is asked of rpm by the ids it gives the key file's keys (read in
//! a scratch database), so a re-run is ok, as ansible's.

use async_trait::async_trait;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// `ids_of KEY`: `f` = the key file (a URL is downloaded to `$t`), `ids` =
/// the ids rpm gives its keys (`VERSION-RELEASE` of `gpg-pubkey`), read by
/// importing it into a scratch database.
const KEY_IDS: &str = r#"t=""
ids_of() {
  case $1 in
    *://*) t=$(mktemp); dl "$1" "$t" 2>"$t.err" || fail "downloading $1 failed: $(cat "$t.err")"; f=$t;;
    *) f=$1; [ -f "$f" ] || fail "$1 is not a file";;
  esac
  d_=$(mktemp -d)
  rpm --dbpath "$d_" --import "$f" >/dev/null 2>&1 || { rm -rf "$d_"; fail "$1 is not a valid GPG key"; }
  ids=$(rpm --dbpath "$d_" -q gpg-pubkey --qf '%{VERSION}-%{RELEASE}
' 2>/dev/null)
  rm -rf "$d_"
}
"#;

/// ansible's gpg calls (`getkeyid` on a key file, `is_key_imported`),
/// their output unused; none without gpg.
const GPG_SIDE_EFFECT: &str = r#"if command -v gpg >/dev/null 2>&1; then
  if [ -n "${f:-}" ]; then gpg --no-tty --batch --with-colons --fixed-list-mode "$f" >/dev/null 2>&1 || :; fi
  rpm -q gpg-pubkey --qf '%{description}' 2>/dev/null | gpg --no-tty --batch --with-colons --fixed-list-mode - >/dev/null 2>&1 || :
fi
"#;

/// The `rpm_key` module.
pub struct RpmKey;

#[async_trait]
impl Module for RpmKey {
    fn name(&self) -> &'static str {
        "rpm_key"
    }
    fn params(&self) -> &'static [&'static str] {
        &["key", "state", "fingerprint", "validate_certs"]
    }
    fn required(&self) -> &'static [&'static str] {
        &["key"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let key = args.str("key")?;
        let absent = args.choice("state", &["present", "absent"], "present")? == "absent";
        let is_file = key.contains("://") || key.starts_with('/');
        // A key id (ansible: 8 hex digits at least, `0x` allowed): the last
        // 8, as rpm names the key (`gpg-pubkey-<id>`).
        let id = key.trim_start_matches("0x").trim_start_matches("0X");
        let id_ok = id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit());
        let usable = is_file || (absent && id_ok);
        if !usable {
            return Err(ModuleError::Arg(format!(
                "rpm_key: `{key}` is {}",
                if absent {
                    "neither a key id, a URL nor an absolute path"
                } else {
                    "not a URL or an absolute path (importing needs the key file)"
                }
            )));
        }
        let fingerprints: Vec<String> = args
            .list("fingerprint")
            .iter()
            .map(|f| f.replace(' ', "").to_uppercase())
            .collect();
        let mut body = String::from(KEY_IDS);
        if is_file {
            body.push_str(&format!("ids_of {}\n", q(&key)));
        } else {
            let short = id.to_lowercase();
            body.push_str(&format!("ids={}\n", q(&short[short.len() - 8..])));
        }
        // ansible reads the key file's id with the target's gpg and asks gpg
        // which keys rpm has, on every run, in the user's home: its
        // ~/.gnupg (pubring.kbx, trustdb.gpg) appears as under ansible.
        body.push_str(GPG_SIDE_EFFECT);
        if !fingerprints.is_empty() {
            body.push_str(&format!(
                "fp=$(gpg --batch --with-colons --show-keys \"$f\" 2>/dev/null | awk -F: '$1==\"fpr\" {{print $10}}') || fail 'checking the fingerprint needs gpg on the target'\nfor w in {}; do printf '%s\\n' \"$fp\" | grep -qxF \"$w\" || fail \"The specified fingerprint, $w, does not match the key fingerprint(s) $(echo $fp)\"; done\n",
                fingerprints.iter().map(|f| q(f)).collect::<Vec<_>>().join(" ")
            ));
        }
        body.push_str(if absent {
            "for i in $ids; do if rpm -q \"gpg-pubkey-$i\" >/dev/null 2>&1; then C=1; do_ rpm -e --allmatches \"gpg-pubkey-$i\"; fi; done\n"
        } else {
            "for i in $ids; do rpm -q \"gpg-pubkey-$i\" >/dev/null 2>&1 || C=1; done\nif [ \"$C\" = 1 ]; then do_ rpm --import \"$f\"; fi\n"
        });
        body.push_str("[ -z \"$t\" ] || rm -f \"$t\" \"$t.err\"\n");
        let out = ctx
            .run_script_dl(
                &body,
                None,
                &super::http::Request::get(&args.opt_str("key").unwrap_or_default()),
            )
            .await?;
        Ok(ModuleResult::from_script(&out, "rpm_key"))
    }
}
