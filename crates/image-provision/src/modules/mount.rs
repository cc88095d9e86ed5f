//! `mount`: keeps an `/etc/fstab` entry (edited locally after one read)
//! and the mount state (`mounted`, `unmounted`, `present`, `absent`,
//! `remounted`); `fstype: swap` entries are switched on with `swapon`.
//! `absent` (as ansible's): when the entry was removed, unmounts and
//! removes the mount point directory.

use async_trait::async_trait;

use super::{edit_file, Args, Module, ModuleCtx, ModuleError, ModuleResult};
use crate::script::{q, FileSpec};

/// The `mount` module.
pub struct Mount;

#[async_trait]
impl Module for Mount {
    fn name(&self) -> &'static str {
        "mount"
    }
    fn params(&self) -> &'static [&'static str] {
        &[
            "path", "name", "src", "fstype", "opts", "dump", "passno", "state", "fstab", "backup",
            "boot",
        ]
    }
    fn required(&self) -> &'static [&'static str] {
        &["path|name", "state"]
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: &Args) -> Result<ModuleResult, ModuleError> {
        super::refuse::check(self.name(), args)?;
        let path = args.str_any(&["path", "name"])?;
        let state = args.choice(
            "state",
            &[
                "mounted",
                "unmounted",
                "present",
                "absent",
                "remounted",
                "ephemeral",
            ],
            "mounted",
        )?;
        let fstab = args.opt_str("fstab").unwrap_or_else(|| "/etc/fstab".into());
        let src = args.opt_str("src");
        let fstype = args.opt_str("fstype");
        let swap = fstype.as_deref() == Some("swap");
        let mut opts = args.opt_str("opts").unwrap_or_else(|| "defaults".into());
        // `boot: false` (as ansible on Linux): `noauto` added to the options.
        let boot = args.bool_or("boot", true)?;
        if !boot {
            opts.push_str(",noauto");
        }
        let dump = args.opt_str("dump").unwrap_or_else(|| "0".into());
        let passno = args.opt_str("passno").unwrap_or_else(|| "0".into());
        if matches!(state.as_str(), "mounted" | "present") && (src.is_none() || fstype.is_none()) {
            return Err(ModuleError::Arg(format!(
                "state={state} needs `src` and `fstype`"
            )));
        }
        let mut r = ModuleResult::ok();
        if state != "unmounted" && state != "remounted" && state != "ephemeral" {
            let spec = FileSpec {
                dest: fstab.clone(),
                force: true,
                backup: args.bool_or("backup", false)?,
                ..Default::default()
            };
            let entry = format!(
                "{} {} {} {} {} {}",
                src.clone().unwrap_or_default(),
                if swap && path != "none" {
                    "none".to_string()
                } else {
                    path.clone()
                },
                fstype.clone().unwrap_or_default(),
                opts,
                dump,
                passno
            );
            let (p2, src2, absent) = (path.clone(), src.clone(), state == "absent");
            r = edit_file(ctx, &spec, move |cur| {
                let cur = cur.unwrap_or("").to_string();
                let mut lines: Vec<String> = cur.lines().map(str::to_string).collect();
                let matches = |l: &str| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    !l.trim_start().starts_with('#')
                        && f.len() >= 2
                        && if swap {
                            Some(f[0]) == src2.as_deref() && f.get(2) == Some(&"swap")
                        } else {
                            f[1] == p2
                        }
                };
                match lines.iter().position(|l| matches(l)) {
                    Some(_) if absent => lines.retain(|l| !matches(l)),
                    Some(i) => {
                        let same = lines[i].split_whitespace().collect::<Vec<_>>()
                            == entry.split_whitespace().collect::<Vec<_>>();
                        if !same {
                            lines[i] = entry.clone();
                        }
                    }
                    None if absent => return Ok(None),
                    None => lines.push(entry.clone()),
                }
                let mut s = lines.join("\n");
                if !lines.is_empty() {
                    s.push('\n');
                }
                Ok(Some(if s.trim_end() == cur.trim_end() {
                    cur
                } else {
                    s
                }))
            })
            .await?;
            if r.failed {
                return Ok(r);
            }
        }
        let fstab_changed = r.changed;
        let body = match (state.as_str(), swap) {
            ("mounted", true) => format!("s={}\ngrep -q \"^$(readlink -f \"$s\" 2>/dev/null || echo \"$s\") \" /proc/swaps || {{ C=1; do_ swapon \"$s\"; }}", q(src.as_deref().unwrap_or(""))),
            ("mounted", false) => format!(
                "p={}\nif mountpoint -q \"$p\" 2>/dev/null; then [ {} = 1 ] && {{ C=1; do_ mount -o remount \"$p\"; }}; else C=1; [ \"$CHECK\" = 1 ] || mkdir -p \"$p\"; do_ mount \"$p\"; fi",
                q(&path),
                u8::from(fstab_changed)
            ),
            ("unmounted", true) | ("absent", true) => format!("s={}\ngrep -q \"^$(readlink -f \"$s\" 2>/dev/null || echo \"$s\") \" /proc/swaps && {{ C=1; do_ swapoff \"$s\"; }}; true", q(src.as_deref().unwrap_or(""))),
            ("unmounted", false) => format!("p={}\nif mountpoint -q \"$p\" 2>/dev/null; then C=1; do_ umount \"$p\"; fi", q(&path)),
            // As ansible: only when the entry was removed, unmount and
            // remove the mount point (rmdir: an error if not empty).
            ("absent", false) if fstab_changed => format!(
                "p={}\nif [ \"$CHECK\" != 1 ]; then\n  if mountpoint -q \"$p\" 2>/dev/null; then _o=$(umount \"$p\" 2>&1) || fail \"Error unmounting $p: $_o\"; fi\n  if [ -e \"$p\" ]; then _o=$(rmdir \"$p\" 2>&1) || fail \"Error rmdir $p: $_o\"; fi\nfi",
                q(&path)
            ),
            ("remounted", _) => format!("p={}\nC=1; do_ mount -o remount \"$p\"", q(&path)),
            _ => String::new(),
        };
        if !body.is_empty() {
            let out = ctx.run_script(&body, None).await?;
            let r2 = ModuleResult::from_script(&out, &path);
            r.changed |= r2.changed;
            if r2.failed {
                r.failed = true;
                r.msg = r2.msg;
            }
        }
        // ansible's result: the entry's fields as the module used them
        // (`src`/`fstype` when given), the fstab, `boot` as `yes`/`no` and
        // the backup's name (empty without one).
        let backup_file = r.data.get("backup_file").cloned().unwrap_or("".into());
        r.data = serde_json::Map::new();
        if r.failed {
            return Ok(r);
        }
        r.data.insert("name".into(), path.into());
        if let Some(s) = src {
            r.data.insert("src".into(), s.into());
        }
        if let Some(f) = fstype {
            r.data.insert("fstype".into(), f.into());
        }
        r.data.insert("opts".into(), opts.into());
        r.data.insert("dump".into(), dump.into());
        r.data.insert("passno".into(), passno.into());
        r.data.insert("fstab".into(), fstab.into());
        r.data
            .insert("boot".into(), if boot { "yes" } else { "no" }.into());
        r.data.insert("backup_file".into(), backup_file);
        Ok(r)
    }
}
