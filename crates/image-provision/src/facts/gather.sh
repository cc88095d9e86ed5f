# The fact script (one round trip): raw data in sections, parsed by
# facts.rs and its parsers. `@@s NAME` starts a section; every line until
# the next one belongs to it. Nothing here needs python.
#
# Kept cheap (issue #16: facts in one exec under 30 ms): one-line files
# are read with the shell's `read` instead of a `cat` each (`read` takes a
# byte per system call, so longer files go through one awk: the small files (os-release, meminfo, cpuinfo, resolv.conf, mountinfo,
# PID 1's cgroups, the module list), mounts are filtered by another,
# stat'ed with one `stat` and looked up in one `lsblk`; no `$(...)` is spent
# on builtins alone (each is a process in dash); and root keeps
# the answers of `lsb_release` and python3 (for the `python` facts) in
# /run under the stat of their files, so a re-run starts neither.
nl='
'
s() { echo "@@s $1"; }
# one FILE: its first line into $v (empty when unreadable).
one() { v=; [ -r "$1" ] || return 1; { IFS= read -r v < "$1"; } 2>/dev/null; return 0; }
# The first `NAME` on PATH into $v (empty when none), without `$(command -v)`.
onpath() { v=; _ifs=$IFS; IFS=:; for _d in $PATH; do [ -x "$_d/$1" ] && [ ! -d "$_d/$1" ] && { v=$_d/$1; break; }; done; IFS=$_ifs; }
onpath lsb_release; _lb=$v
onpath python3; _py=$v
# lsb_release (a script of its own, ~10 ms) and python3 (~15 ms) are asked
# again only when they or the release files they read changed; root keeps
# their answers in /run, keyed by one `stat`.
_c=/run/image-cli/facts-cache; _k=; _hit=; _lbo=; _pyo=
if [ -w /run ]; then
  _k=$(stat -L --printf '%n %i %Y %s;' ${_lb:+"$_lb"} ${_py:+"$_py"} /etc/os-release /usr/lib/os-release /etc/lsb-release /etc/debian_version 2>/dev/null)
  if [ -r "$_c" ]; then
    { IFS= read -r _ck; if [ "$_ck" = "$_k" ]; then IFS= read -r _pyo; while IFS= read -r l; do _lbo="$_lbo$l$nl"; done; _hit=1; fi; } < "$_c"
  fi
fi
# What stays the same until a reboot (the machine, LONG_BIT, PID 1's
# environment) root keeps in /run too, keyed by the boot id: a re-run
# starts no `uname`, `getconf`, `tr` or `sed` for them.
_bc=/run/image-cli/facts-boot; _bid=; _bhit=; um=; bits=; envs=
if [ -n "$_k" ] && one /proc/sys/kernel/random/boot_id && [ -n "$v" ]; then
  _bid=$v
  if [ -r "$_bc" ]; then
    { IFS= read -r _bk; if [ "$_bk" = "$_bid" ]; then IFS= read -r um; IFS= read -r bits; while IFS= read -r l; do envs="$envs$l$nl"; done; _bhit=1; fi; } < "$_bc"
  fi
fi
pyf=/tmp/.image-cli-facts-py.$$
pypid=
if [ -z "$_hit" ] && [ -n "$_py" ]; then
  "$_py" -I -S -c 'import sys,json; v=sys.version_info; print(json.dumps({"executable": sys.executable, "has_sslcontext": True, "type": sys.implementation.name.replace("cpython","cpython"), "version": {"major": v.major, "minor": v.minor, "micro": v.micro, "releaselevel": v.releaselevel, "serial": v.serial}, "version_info": list(v)}))' > "$pyf" 2>/dev/null &
  pypid=$!
fi
s debver; one /etc/debian_version && printf '%s\n' "$v"
s lsb
if [ -n "$_lb" ]; then
  [ -n "$_hit" ] || { _lbo=$("$_lb" -a 2>/dev/null); _lbo="$_lbo$nl"; }
  printf '%s' "$_lbo"
elif [ -r /etc/lsb-release ]; then while IFS= read -r l || [ -n "$l" ]; do printf 'F:%s\n' "$l"; done < /etc/lsb-release; fi
# uname's fields from /proc (the machine from the cache), else one uname.
un=; ur=; uv=
one /proc/sys/kernel/hostname && un=$v; one /proc/sys/kernel/osrelease && ur=$v; one /proc/sys/kernel/version && uv=$v
if [ -z "$_bhit" ] || [ -z "$um" ] || [ -z "$un" ] || [ -z "$ur" ] || [ -z "$uv" ]; then
  u=$(uname -nrvm); un=${u%% *}; u=${u#* }; ur=${u%% *}; u=${u#* }; um=${u##* }; uv=${u% *}
fi
s uname; printf '%s\n' "$um" "$ur" "$uv" "$un"
s host; echo "$un"; hostname -f 2>/dev/null || hostname 2>/dev/null || echo "$un"
# processor_nproc is the count of CPUs this process may run on (ansible's
# len(os.sched_getaffinity(0))): the small files' awk reads it from
# /proc/self/status; nproc only where that cannot be read.
[ -r /proc/self/status ] || { s nproc; nproc 2>/dev/null || echo 1; }
# Without `hardware`, `network` or all of `gather_subset` (facts/subset.rs
# sets `_no_hw`, `_no_net`, `_no_other`), their parts are skipped.
if [ -z "${_no_hw-}" ]; then
s mounts
if [ -e /etc/mtab ]; then mt=/etc/mtab; else mt=/proc/mounts; fi
set --
rows=
mts=$(awk '($1 ~ /^\// || $1 ~ /^\\/ || $1 ~ /:\//) && $3 != "none"' "$mt" 2>/dev/null)
while read -r dev mnt fs opts d p; do
  [ -n "$dev" ] || continue
  case $mnt in *\\*) m=$(printf '%b' "$mnt");; *) m=$mnt;; esac
  set -- "$@" "$m"
  rows="$rows$dev|$m|$fs|$opts|$d $p$nl"
done <<MOUNTS
$mts
MOUNTS
if [ $# -gt 0 ]; then
  sts="$nl$(stat -f -c '%n|%s %S %b %a %f %c %d' -- "$@" 2>/dev/null)$nl"
  ids="$nl$(lsblk -rnpo NAME,UUID 2>/dev/null)$nl"
  while IFS='|' read -r dev m fs opts dp; do
    [ -n "$dev" ] || continue
    st=; case $sts in *"$nl$m|"*) st=${sts#*"$nl$m|"}; st=${st%%"$nl"*};; esac
    id=; case $ids in *"$nl$dev "*) id=${ids#*"$nl$dev "}; id=${id%%"$nl"*};; esac
    printf '%s|%s|%s|%s|%s|%s|%s\n' "$dev" "$m" "$fs" "$opts" "$st" "${id:-N/A}" "$dp"
  done <<ROWS
$rows
ROWS
fi
fi
if [ -z "${_no_net-}" ]; then
s links; for i in /sys/class/net/*; do [ -e "$i" ] || continue; n=${i##*/}
  one $i/flags; fl=$v; one $i/type; ty=$v; one $i/mtu; mtu=$v; one $i/address; ad=$v; one $i/speed; sp=$v
  k=; [ -d $i/bridge ] && k=bridge; [ -d $i/bonding ] && k=${k:+$k$nl}bonding
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$n" "$fl" "$ty" "$mtu" "$ad" "$k" "$sp"; done
# The addresses and both default routes from one `ip -batch` (-o puts a
# route's lines on one, joined by ` \`: its first line is what comes
# before); three calls of `ip` where it gives no address that way.
_a=; _r4=; _r6=
_ipo=$(ip -o -force -batch - 2>/dev/null <<'IPCMDS'
addr show
route get 8.8.8.8
route get 2404:6800:400a:800::1012
IPCMDS
)
while IFS= read -r l; do
  case $l in
    '8.8.8.8 '*) _r4=${l%%' \'*} ;;
    '2404:6800:400a:800::1012 '*) _r6=${l%%' \'*} ;;
    [0-9]*:*) _a="$_a$l$nl" ;;
  esac
done <<IPS
$_ipo
IPS
if [ -z "$_a" ]; then
  _a=$(ip -o addr show 2>/dev/null); _a=${_a:+$_a$nl}
  l=$(ip -4 route get 8.8.8.8 2>/dev/null) && _r4=${l%%"$nl"*}
  l=$(ip -6 route get 2404:6800:400a:800::1012 2>/dev/null) && _r6=${l%%"$nl"*}
fi
s addrs; printf '%s' "$_a"
s route4; [ -n "$_r4" ] && printf '%s\n' "$_r4"
s route6; [ -n "$_r6" ] && printf '%s\n' "$_r6"
fi
s cmdline; one /proc/cmdline && printf '%s\n' "$v"
s user
u=$(id); uid=${u#uid=}; uname_=${uid#*\(}; uname_=${uname_%%\)*}; uid=${uid%%\(*}
gid=${u#* gid=}; gid=${gid%%\(*}
printf '%s\n' "$uname_" "$uid" "$gid" "$uid" "$gid"; getent passwd "$uname_" 2>/dev/null
# One date: the UTC fields are its epoch's (facts/platform.rs); tz_dst is
# the zone without TZ (UTC).
s date; date +'%Y|%m|%d|%H|%M|%S|%s|%A|%w|%W|%Z|%z|%N'; echo UTC
s machine_id; if [ -r /var/lib/dbus/machine-id ]; then one /var/lib/dbus/machine-id; else one /etc/machine-id; fi; [ -n "$v" ] && printf '%s\n' "$v"
s dmi; for f in bios_date bios_vendor bios_version board_asset_tag board_name board_serial board_vendor board_version chassis_asset_tag chassis_serial chassis_vendor chassis_version chassis_type product_name product_serial product_uuid product_version sys_vendor product_family; do
  if [ -r /sys/devices/virtual/dmi/id/$f ]; then one /sys/devices/virtual/dmi/id/$f; else v="@@NA"; fi; printf '%s=%s\n' "$f" "$v"; done
s virt
if [ -n "$_bhit" ]; then printf '%s' "$envs"
elif [ -r /proc/1/environ ]; then envs=$(tr '\0' '\n' < /proc/1/environ 2>/dev/null | sed 's/^/environ:/'); [ -z "$envs" ] || { envs="$envs$nl"; printf '%s' "$envs"; }; fi
one /run/systemd/container; echo "container:$v"
for f in /.dockerenv /.dockerinit /proc/vz /proc/lve /proc/bc /proc/xen /proc/modules; do [ -e "$f" ] && echo "exists:$f"; done
[ -r /proc/xen/capabilities ] && grep -q control_d /proc/xen/capabilities 2>/dev/null && echo xenhost:1
s misc
if [ -d /run/systemd/system ]; then echo "service_mgr=systemd"; else one /proc/1/comm; echo "service_mgr=$v"; fi
for p in apt-get dnf5 dnf yum zypper apk pacman; do if command -v $p >/dev/null 2>&1; then echo "pkg_mgr=${p%-get}"; break; fi; done
one /proc/uptime; echo "uptime=${v%% *}"
one /proc/loadavg; echo "loadavg=$v"
one /proc/sys/crypto/fips_enabled; echo "fips=$v"
[ -n "$_bhit" ] || bits=$(getconf LONG_BIT 2>/dev/null)
echo "bits=$bits"
if [ -e /sys/kernel/security/apparmor ]; then echo apparmor=enabled; else echo apparmor=disabled; fi
if [ -z "${_no_other-}" ]; then
r=$(stat -c %d:%i / /proc/1/root/. 2>/dev/null); r1=${r%%"$nl"*}; r2=; case $r in *"$nl"*) r2=${r#*"$nl"};; esac
if [ -z "$r2" ]; then echo chroot=; elif [ "$r1" = "$r2" ]; then echo chroot=0; else echo chroot=1; fi
fi
if [ -n "$pypid" ]; then wait "$pypid"; one "$pyf"; _pyo=$v; rm -f "$pyf"; fi
[ -n "$_pyo" ] && echo "python=$_pyo"
if [ -n "$_k" ] && [ -z "$_hit" ] && mkdir -p /run/image-cli 2>/dev/null; then
  { printf '%s\n%s\n%s' "$_k" "$_pyo" "$_lbo" > "$_c.$$" && mv -f "$_c.$$" "$_c"; } 2>/dev/null
fi
if [ -n "$_bid" ] && [ -z "$_bhit" ] && [ -n "$um" ] && mkdir -p /run/image-cli 2>/dev/null; then
  { printf '%s\n%s\n%s\n%s' "$_bid" "$um" "$bits" "$envs" > "$_bc.$$" && mv -f "$_bc.$$" "$_bc"; } 2>/dev/null
fi
for l in /lib/*/libselinux.so.1 /usr/lib/*/libselinux.so.1 /lib64/libselinux.so.1 /usr/lib64/libselinux.so.1 /lib/libselinux.so.1 /usr/lib/libselinux.so.1; do [ -e "$l" ] && { echo "selinux_lib=1"; break; }; done
if [ -e /sys/fs/selinux/enforce ]; then one /sys/fs/selinux/enforce; echo "selinux_enforce=$v"; one /sys/fs/selinux/policyvers; echo "selinux_policyvers=$v"
  [ -r /etc/selinux/config ] && sed -n 's/^SELINUX=/selinux_config=/p; s/^SELINUXTYPE=/selinux_type=/p' /etc/selinux/config; fi
# The small files in one awk: a section per file (os-release, meminfo,
# cpuinfo, resolv.conf), the CPUs this process may use, bind mounts (findmnt shows SOURCE[root] for a mount
# whose root is not /), PID 1's cgroups and the loaded modules (virt).
set --
for f in /etc/os-release /proc/meminfo /proc/cpuinfo /etc/resolv.conf /proc/self/mountinfo /proc/self/status /proc/1/cgroup /proc/modules; do [ -r "$f" ] && set -- "$@" "$f"; done
[ $# -gt 0 ] && awk 'FNR == 1 { f = FILENAME; h = f == "/etc/os-release" ? "osrel" : f == "/proc/meminfo" ? "meminfo" : f == "/proc/cpuinfo" ? "cpuinfo" : f == "/etc/resolv.conf" ? "resolv" : f == "/proc/self/mountinfo" ? "binds" : f == "/proc/self/status" ? "nproc" : "virt"; print "@@s " h }
  f == "/proc/self/mountinfo" { if ($4 != "/") print $5; next }
  f == "/proc/self/status" { if ($1 == "Cpus_allowed_list:") { n = 0; c = split($2, r, ","); for (i = 1; i <= c; i++) n += split(r[i], x, "-") == 2 ? x[2] - x[1] + 1 : 1; print n } next }
  f == "/proc/1/cgroup" { print "cgroup:" $0; next }
  f == "/proc/modules" { print "module:" $1; next }
  { print }' "$@" 2>/dev/null
s env; env -0 | base64 -w0 2>/dev/null || env -0 | base64 | tr -d '\n'; echo
s end
