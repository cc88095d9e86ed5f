#!/usr/bin/env bash
# mmdebstrap customize hook of the RPM-managed target rootfs, run after
# rootfs-customize.sh. $1 = the rootfs, $2 = the local RPM repository
# (build-rpm-repo.sh). Not Amazon Linux, but real rpm and dnf: the system rpm
# database in /var/lib/rpm, tb-system-release installed from the repository
# (dnf's $releasever, as AL2023's system-release package), an os-release that
# says Amazon Linux 2023 (so facts say RedHat family, pkg_mgr dnf, as on an
# AL2023 build host), no apt, no .repo files (the tests add theirs).
set -euo pipefail
root="$1"
repo="$2"

in_root() { chroot "$root" "$@"; }

# Debian's rpm keeps a per-user database (~/.rpmdb); RPM systems use one.
install -d "$root/etc/rpm"
echo '%_dbpath /var/lib/rpm' >"$root/etc/rpm/macros"
install -d "$root/var/lib/rpm"
in_root rpm --initdb

# The release package, its signature not checked (no key imported yet: the
# tests import it with rpm_key). --force-debian: Debian's rpm refuses plain
# installs otherwise ("use Alien instead").
cp "$repo"/release/tb-system-release-*.rpm "$root/tmp/"
in_root sh -c 'rpm -i --force-debian --nosignature --nodeps /tmp/tb-system-release-*.rpm'
rm -f "$root"/tmp/tb-system-release-*.rpm

# What an AL2023 build host reports.
rm -f "$root/etc/os-release"
cat >"$root/usr/lib/os-release" <<'OSREL'
NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023 (image-testbed: Debian with rpm and dnf)"
ANSI_COLOR="0;33"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
OSREL
ln -s ../usr/lib/os-release "$root/etc/os-release"
echo 'Amazon Linux release 2023 (Amazon Linux)' >"$root/etc/system-release"
rm -f "$root/etc/debian_version" "$root/etc/lsb-release"

# No apt: dnf is the package manager (dpkg stays, it owns the base system).
in_root dpkg --purge apt >/dev/null
rm -rf "$root/var/log/apt"

# dnf: no repositories of its own, quiet, no background timers.
install -d "$root/etc/yum.repos.d"
rm -f "$root"/etc/yum.repos.d/*
for unit in dnf-makecache.timer dnf-makecache.service; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
