#!/usr/bin/env bash
# mmdebstrap customize hook for the test bed target rootfs. $1 = the rootfs.
# TESTBED_KEYS_DIR holds the test keys whose public halves are authorized.
set -euo pipefail
root="$1"
keys="${TESTBED_KEYS_DIR:?}"
user=builder

in_root() { chroot "$root" "$@"; }

# Unprivileged user with passwordless sudo; '*' (not '!') so that sshd does
# not treat the account as locked.
in_root useradd --create-home --shell /bin/bash --user-group "$user"
in_root usermod --password '*' "$user"
in_root usermod --password '*' root
cat >"$root/etc/sudoers.d/$user" <<SUDO
Defaults:$user !requiretty
$user ALL=(ALL:ALL) NOPASSWD: ALL
SUDO
chmod 0440 "$root/etc/sudoers.d/$user"

# authorized_keys for the user and for root.
for home in "/home/$user" /root; do
    install -d -m 0700 "$root$home/.ssh"
    cat "$keys/id_ed25519.pub" "$keys/id_rsa.pub" >"$root$home/.ssh/authorized_keys"
    chmod 0600 "$root$home/.ssh/authorized_keys"
done
in_root chown -R "$user:$user" "/home/$user/.ssh"

# Every boot is a first boot: empty machine-id (systemd fills it at boot).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# Not the build host's name: each target gets its machine name (the test bed
# writes /etc/hostname and /etc/hosts into its overlay).
rm -f "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# slirp4netns DNS.
rm -f "$root/etc/resolv.conf"
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"

# sshd: keys only, many parallel sessions, no reverse DNS.
cat >"$root/etc/ssh/sshd_config.d/10-testbed.conf" <<'SSHD'
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 200
MaxStartups 200:30:400
UseDNS no
SSHD

# No shared host keys: each target generates its own before sshd starts.
rm -f "$root"/etc/ssh/ssh_host_*
install -d "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/10-testbed-hostkeys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT

# Nothing in the background that a test does not ask for.
for unit in systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
    fstrim.timer e2scrub_all.timer e2scrub_reap.service; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
