//! `user`: creates, changes or removes a user account (uid, primary group,
//! supplementary groups, shell, home, comment, password hash), in one
//! script that compares `getent` output first.

use async_trait::async_trait;
use serde_json::Value as Json;

use super::{Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::q;

/// The `user` module.
pub struct User;

#[async_trait]
impl Module for User {
    fn name(&self) -> &'static str {
        "user"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "name",
            "user",
            "uid",
            "group",
            "groups",
            "append",
            "shell",
            "home",
            "create_home",
            "createhome",
            "system",
            "state",
            "comment",
            "password",
            "update_password",
            "remove",
            "force",
            "move_home",
            "password_lock",
            "expires",
            "non_unique",
            "local",
            "umask",
            "skeleton",
            "generate_ssh_key",
            "ssh_key_bits",
            "ssh_key_type",
            "ssh_key_file",
            "ssh_key_comment",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["name|user"]
    }
    /// Every effect sets `C`.
    fn check_is_probe(
        &self,
        args: &Args,
        _facts: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let _ = args;
        true
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let name = args.str_any(&["name", "user"])?;
        let state = args.choice("state", &["present", "absent"], "present")?;
        let o = |k: &str| q(args.opt_str(k).as_deref().unwrap_or(""));
        let groups = args.list("groups").join(",");
        let groups_given = args.get("groups").is_some();
        let create_home = args.bool_or("create_home", args.bool_or("createhome", true)?)?;
        let body = if state == "absent" {
            format!(
                "n={}\nif getent passwd \"$n\" >/dev/null; then C=1; do_ userdel {} \"$n\"; fi",
                q(&name),
                if args.bool_or("remove", false)? {
                    "-r"
                } else {
                    ""
                }
            )
        } else {
            format!(
                r#"shd() {{ _sh=; IFS=: read -r _ _sh _ <<EOF
$(getent shadow "$n")
EOF
}}
# mkhome DIR: /etc/skel's copy (or an empty directory), its mode from
# /etc/login.defs (HOME_MODE, else 0777 less UMASK, else 0755), owned by
# the account, as ansible's user module makes a missing home.
mkhome() {{
  dn "$1"; mkdir -p "$_dn" || fail "mkdir $_dn failed"
  if [ -d /etc/skel ]; then cp -a /etc/skel "$1"; else mkdir "$1"; fi || fail "making $1 failed"
  _hm=; _um=
  if [ -r /etc/login.defs ]; then
    while read -r _k _v _r; do
      [ -z "$_r" ] || continue
      case $_k:$_v in HOME_MODE:*[!0-9]*|HOME_MODE:|UMASK:*[!0-9]*|UMASK:) ;; HOME_MODE:*) _hm=$_v; break;; UMASK:*) _um=$_v;; esac
    done < /etc/login.defs
  fi
  [ -n "$_hm" ] || {{ if [ -n "$_um" ]; then _hm=$(printf '%o' $(( 0777 & ~0$_um ))); else _hm=755; fi; }}
  chmod "$_hm" "$1" && chown -R "$n:" "$1" || fail "setting up $1 failed"
}}
n={name}; uid={uid}; grp={group}; groups={groups}; gg={gg}; app={app}; sh={shell}; home={home}; cm={comment}; pw={pw}; upw={upw}; ch={ch}
if e=$(getent passwd "$n"); then
  echo @@existed=1
  IFS=: read -r _ _ _eu _ _ec _eh _es <<EOF
$e
EOF
  [ -n "$uid" ] && [ "$_eu" != "$uid" ] && {{ C=1; do_ usermod -u "$uid" "$n"; }}
  if [ -n "$grp" ]; then cg=$(id -gn "$n"); cgid=$(id -g "$n"); [ "$cg" != "$grp" ] && [ "$cgid" != "$grp" ] && {{ C=1; do_ usermod -g "$grp" "$n"; }}; fi
  [ -n "$sh" ] && [ "$_es" != "$sh" ] && {{ C=1; do_ usermod -s "$sh" "$n"; }}
  [ -n "$home" ] && [ "$_eh" != "$home" ] && {{ C=1; do_ usermod -d "$home" {mv} "$n"; }}
  [ -n "$cm" ] && [ "$_ec" != "$cm" ] && {{ C=1; do_ usermod -c "$cm" "$n"; }}
  if [ "$gg" = 1 ]; then
    # Supplementary groups: `id -nG` lists the primary one first.
    set -f; set -- $(id -nG "$n"); [ $# -gt 0 ] && shift
    cur=,; for g in "$@"; do cur="$cur$g,"; done
    want=,; _ifs=$IFS; IFS=,; for g in $groups; do [ -n "$g" ] && case $want in *",$g,"*) ;; *) want="$want$g,";; esac; done; IFS=$_ifs
    miss=; IFS=,; for g in ${{want#,}}; do case $cur in *",$g,"*) ;; *) miss="$miss,$g";; esac; done
    extra=; for g in ${{cur#,}}; do case $want in *",$g,"*) ;; *) extra=1;; esac; done; IFS=$_ifs; set +f
    want=${{want#,}}; want=${{want%,}}
    if [ "$app" = 1 ]; then
      [ -n "$miss" ] && {{ C=1; do_ usermod -a -G "${{miss#,}}" "$n"; }}
    elif [ -n "$miss$extra" ]; then C=1; do_ usermod -G "$want" "$n"; fi
  fi
  if [ -n "$pw" ] && [ "$upw" = always ]; then shd; [ "$_sh" != "$pw" ] && {{ C=1; do_ usermod -p "$pw" "$n"; }}; fi
  # A missing home of an existing account is made, as ansible does.
  _hd=${{home:-$_eh}}
  if [ "$ch" = 1 ] && [ -n "$_hd" ] && [ ! -e "$_hd" ] && [ ! -L "$_hd" ]; then C=1; [ "$CHECK" = 1 ] || mkhome "$_hd"; fi
else
  C=1; set -- {sys} {mk}; [ -n "$uid" ] && set -- "$@" -u "$uid"; [ -n "$grp" ] && set -- "$@" -g "$grp"; [ -n "$groups" ] && set -- "$@" -G "$groups"
  [ -n "$sh" ] && set -- "$@" -s "$sh"; [ -n "$home" ] && set -- "$@" -d "$home"; [ -n "$cm" ] && set -- "$@" -c "$cm"; [ -n "$pw" ] && set -- "$@" -p "$pw"
  do_ useradd "$@" "$n"
fi
# password_lock: usermod -L / -U, decided by the shadow hash's leading `!`.
case '{lock}' in
  1) if [ "$CHECK" = 1 ] && ! getent passwd "$n" >/dev/null; then C=1; else shd; case $_sh in '!'*) ;; *) C=1; do_ usermod -L "$n";; esac; fi;;
  0) shd; case $_sh in '!'*) C=1; do_ usermod -U "$n";; esac;;
esac"#,
                name = q(&name),
                uid = o("uid"),
                group = o("group"),
                groups = q(&groups),
                gg = u8::from(groups_given),
                app = u8::from(args.bool_or("append", false)?),
                shell = o("shell"),
                home = o("home"),
                comment = o("comment"),
                pw = o("password"),
                upw = q(&args
                    .opt_str("update_password")
                    .unwrap_or_else(|| "always".into())),
                mv = if args.bool_or("move_home", false)? {
                    "-m"
                } else {
                    ""
                },
                sys = if args.bool_or("system", false)? {
                    "-r"
                } else {
                    ""
                },
                mk = if create_home { "-m" } else { "-M" },
                ch = u8::from(create_home),
                lock = match args.get("password_lock").and_then(super::json_bool) {
                    Some(true) => "1",
                    Some(false) => "0",
                    None => "",
                },
            )
        };
        // The entry as it is now: the one read at the start unless
        // something changed for real.
        let body = format!(
            "{body}\nif [ {} = present ]; then if [ \"$C\" = 0 ] || [ \"$CHECK\" = 1 ]; then [ -n \"${{e-}}\" ] && echo \"@@pw=$e\"; elif e=$(getent passwd {}); then echo \"@@pw=$e\"; fi; fi",
            q(&state),
            q(&name)
        );
        let out = ctx.run_script(&body, None).await?;
        let mut r = ModuleResult::from_script(&out, &name);
        r.data.insert("name".into(), name.into());
        r.data.insert("state".into(), state.into());
        // ansible's keys of an existing account, from its passwd entry.
        if let Some(pw) = out.get("pw") {
            let f: Vec<&str> = pw.split(':').collect();
            if f.len() >= 7 {
                let num = |s: &str| s.parse::<u64>().map(Json::from).unwrap_or(Json::Null);
                r.data.insert("uid".into(), num(f[2]));
                r.data.insert("group".into(), num(f[3]));
                r.data.insert("comment".into(), f[4].into());
                r.data.insert("home".into(), f[5].into());
                r.data.insert("shell".into(), f[6].into());
            }
            // ansible's keys of a modified account, or of a new one.
            if out.get("existed").is_some() {
                r.data
                    .insert("append".into(), args.bool_or("append", false)?.into());
                r.data
                    .insert("move_home".into(), args.bool_or("move_home", false)?.into());
            } else {
                r.data.insert("create_home".into(), create_home.into());
                r.data
                    .insert("system".into(), args.bool_or("system", false)?.into());
            }
            if groups_given {
                r.data.insert("groups".into(), groups.clone().into());
            }
        }
        Ok(r)
    }
}
