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
                r#"n={name}; uid={uid}; grp={group}; groups={groups}; gg={gg}; app={app}; sh={shell}; home={home}; cm={comment}; pw={pw}; upw={upw}
if e=$(getent passwd "$n"); then
  [ -n "$uid" ] && [ "$(echo "$e" | cut -d: -f3)" != "$uid" ] && {{ C=1; do_ usermod -u "$uid" "$n"; }}
  if [ -n "$grp" ]; then cg=$(id -gn "$n"); cgid=$(id -g "$n"); [ "$cg" != "$grp" ] && [ "$cgid" != "$grp" ] && {{ C=1; do_ usermod -g "$grp" "$n"; }}; fi
  [ -n "$sh" ] && [ "$(echo "$e" | cut -d: -f7)" != "$sh" ] && {{ C=1; do_ usermod -s "$sh" "$n"; }}
  [ -n "$home" ] && [ "$(echo "$e" | cut -d: -f6)" != "$home" ] && {{ C=1; do_ usermod -d "$home" {mv} "$n"; }}
  [ -n "$cm" ] && [ "$(echo "$e" | cut -d: -f5)" != "$cm" ] && {{ C=1; do_ usermod -c "$cm" "$n"; }}
  if [ "$gg" = 1 ]; then
    cur=$(id -nG "$n" | tr ' ' '\n' | grep -vx "$(id -gn "$n")" | sort | tr '\n' ',' | sed 's/,$//')
    want=$(echo "$groups" | tr ',' '\n' | grep -v '^$' | sort -u | tr '\n' ',' | sed 's/,$//')
    if [ "$app" = 1 ]; then
      miss=""; for g in $(echo "$want" | tr ',' ' '); do echo ",$cur," | grep -q ",$g," || miss="$miss,$g"; done
      [ -n "$miss" ] && {{ C=1; do_ usermod -a -G "${{miss#,}}" "$n"; }}
    elif [ "$cur" != "$want" ]; then C=1; do_ usermod -G "$want" "$n"; fi
  fi
  if [ -n "$pw" ] && [ "$upw" = always ]; then [ "$(getent shadow "$n" | cut -d: -f2)" != "$pw" ] && {{ C=1; do_ usermod -p "$pw" "$n"; }}; fi
else
  C=1; set -- {sys} {mk}; [ -n "$uid" ] && set -- "$@" -u "$uid"; [ -n "$grp" ] && set -- "$@" -g "$grp"; [ -n "$groups" ] && set -- "$@" -G "$groups"
  [ -n "$sh" ] && set -- "$@" -s "$sh"; [ -n "$home" ] && set -- "$@" -d "$home"; [ -n "$cm" ] && set -- "$@" -c "$cm"; [ -n "$pw" ] && set -- "$@" -p "$pw"
  do_ useradd "$@" "$n"
fi
# password_lock: usermod -L / -U, decided by the shadow hash's leading `!`.
case '{lock}' in
  1) if [ "$CHECK" = 1 ] && ! getent passwd "$n" >/dev/null; then C=1; else case $(getent shadow "$n" | cut -d: -f2) in '!'*) ;; *) C=1; do_ usermod -L "$n";; esac; fi;;
  0) case $(getent shadow "$n" | cut -d: -f2) in '!'*) C=1; do_ usermod -U "$n";; esac;;
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
                lock = match args.get("password_lock").and_then(super::json_bool) {
                    Some(true) => "1",
                    Some(false) => "0",
                    None => "",
                },
            )
        };
        let body = format!(
            "{body}\nif [ {} = present ] && e=$(getent passwd {}); then echo \"@@pw=$e\"; fi",
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
            r.data.insert("create_home".into(), create_home.into());
            r.data
                .insert("system".into(), args.bool_or("system", false)?.into());
        }
        Ok(r)
    }
}
