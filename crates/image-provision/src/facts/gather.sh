# The fact script (one round trip): raw data in sections, parsed by
# facts.rs and its parsers. `@@s NAME` starts a section; every line until
# the next one belongs to it. Nothing here needs python.
s() { echo "@@s $1"; }
cat_() { [ -r "$1" ] && cat "$1" 2>/dev/null; }
s osrel; cat_ /etc/os-release
s debver; cat_ /etc/debian_version
s lsb; if command -v lsb_release >/dev/null 2>&1; then lsb_release -a 2>/dev/null; else cat_ /etc/lsb-release | sed 's/^/F:/'; fi
s uname; uname -m; uname -r; uname -v; uname -n
s host; hostname 2>/dev/null || uname -n; hostname -f 2>/dev/null || hostname 2>/dev/null || uname -n
s meminfo; cat_ /proc/meminfo
s cpuinfo; cat_ /proc/cpuinfo
s nproc; nproc 2>/dev/null || echo 1
s mounts; while read -r dev mnt fs opts d p; do
  case $dev in /*|\\*) ;; *:/*) ;; *) continue;; esac; [ "$fs" = none ] && continue
  m=$(printf '%b' "$mnt")
  st=$(stat -f -c '%s %S %b %a %f %c %d' "$m" 2>/dev/null) || st=""
  u=$(lsblk -no UUID "$dev" 2>/dev/null | head -n1)
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$dev" "$m" "$fs" "$opts" "$st" "${u:-N/A}" "$d $p"
done < "$( [ -e /etc/mtab ] && echo /etc/mtab || echo /proc/mounts)"
s binds; command -v findmnt >/dev/null 2>&1 && findmnt --list --noheadings --notruncate 2>/dev/null | awk '$2 ~ /\]/ {print $1}'
s links; for i in /sys/class/net/*; do [ -e "$i" ] || continue; n=${i##*/}
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$n" "$(cat_ $i/flags)" "$(cat_ $i/type)" "$(cat_ $i/mtu)" "$(cat_ $i/address)" "$( [ -d $i/bridge ] && echo bridge; [ -d $i/bonding ] && echo bonding)" "$(cat_ $i/speed)"; done
s addrs; ip -o addr show 2>/dev/null
s route4; ip -4 route get 8.8.8.8 2>/dev/null | head -n1
s route6; ip -6 route get 2404:6800:400a:800::1012 2>/dev/null | head -n1
s resolv; cat_ /etc/resolv.conf
s cmdline; cat_ /proc/cmdline
s user; id -un; id -u; id -g; id -ru; id -rg; getent passwd "$(id -un)" 2>/dev/null
s date; date +'%Y|%m|%d|%H|%M|%S|%s|%A|%w|%W|%Z|%z|%N'; date -u +'%Y-%m-%dT%H:%M:%S|%N'; TZ= date +%Z 2>/dev/null
s machine_id; cat_ /var/lib/dbus/machine-id || cat_ /etc/machine-id
s dmi; for f in bios_date bios_vendor bios_version board_asset_tag board_name board_serial board_vendor board_version chassis_asset_tag chassis_serial chassis_vendor chassis_version chassis_type product_name product_serial product_uuid product_version sys_vendor product_family; do
  v=$(cat /sys/devices/virtual/dmi/id/$f 2>/dev/null) || v="@@NA"; printf '%s=%s\n' "$f" "$v"; done
s virt
cat_ /proc/1/cgroup | sed 's/^/cgroup:/'
if [ -r /proc/1/environ ]; then tr '\0' '\n' < /proc/1/environ 2>/dev/null | sed 's/^/environ:/'; fi
echo "container:$(cat_ /run/systemd/container)"
for f in /.dockerenv /.dockerinit /proc/vz /proc/lve /proc/bc /proc/xen /proc/modules; do [ -e "$f" ] && echo "exists:$f"; done
grep -q control_d /proc/xen/capabilities 2>/dev/null && echo xenhost:1
[ -r /proc/modules ] && awk '{print "module:" $1}' /proc/modules
s misc
echo "service_mgr=$( if [ -d /run/systemd/system ]; then echo systemd; else cat_ /proc/1/comm; fi )"
for p in apt-get dnf5 dnf yum zypper apk pacman; do if command -v $p >/dev/null 2>&1; then echo "pkg_mgr=${p%-get}"; break; fi; done
echo "uptime=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
echo "loadavg=$(cat_ /proc/loadavg)"
echo "fips=$(cat_ /proc/sys/crypto/fips_enabled)"
echo "bits=$(getconf LONG_BIT 2>/dev/null)"
echo "apparmor=$( [ -e /sys/kernel/security/apparmor ] && echo enabled || echo disabled)"
r1=$(stat -c %d:%i / 2>/dev/null); r2=$(stat -c %d:%i /proc/1/root/. 2>/dev/null); echo "chroot=${r2:+$( [ "$r1" = "$r2" ] && echo 0 || echo 1)}"
if command -v python3 >/dev/null 2>&1; then
  echo "python=$(python3 -c 'import sys,json; v=sys.version_info; print(json.dumps({"executable": sys.executable, "has_sslcontext": True, "type": sys.implementation.name.replace("cpython","cpython"), "version": {"major": v.major, "minor": v.minor, "micro": v.micro, "releaselevel": v.releaselevel, "serial": v.serial}, "version_info": list(v)}))' 2>/dev/null)"
fi
for l in /lib/*/libselinux.so.1 /usr/lib/*/libselinux.so.1 /lib64/libselinux.so.1 /usr/lib64/libselinux.so.1 /lib/libselinux.so.1 /usr/lib/libselinux.so.1; do [ -e "$l" ] && { echo "selinux_lib=1"; break; }; done
if [ -e /sys/fs/selinux/enforce ]; then echo "selinux_enforce=$(cat_ /sys/fs/selinux/enforce)"; echo "selinux_policyvers=$(cat_ /sys/fs/selinux/policyvers)"
  [ -r /etc/selinux/config ] && sed -n 's/^SELINUX=/selinux_config=/p; s/^SELINUXTYPE=/selinux_type=/p' /etc/selinux/config; fi
s env; env -0 | base64 -w0 2>/dev/null || env -0 | base64 | tr -d '\n'; echo
s end
