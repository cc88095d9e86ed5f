#!/usr/bin/env bash
# mmdebstrap customize hook of the VM target rootfs, run after
# rootfs-customize.sh. $1 = the rootfs. The rootfs boots under qemu with its
# own Debian kernel (linux-image-cloud-amd64, kernel and initrd read from its
# /boot by build-vm-image.sh), as a KVM/TCG guest on qemu's user network:
# * network: systemd-networkd, static 10.0.2.100/24 (the nspawn targets'
#   address), gateway and host loopback 10.0.2.2, DNS 10.0.2.3 (qemu's slirp);
#   no wait-online.
# * per-target files: a second disk (/dev/vdb, ext4 made by the test bed with
#   the target's /etc/hostname, /etc/hosts and its extra files) is copied
#   over / before sshd starts (testbed-seed.service), existing directories
#   keeping their owner and mode.
# * no fsck of the root disk, no timers, no getty on tty1 (serial only).
set -euo pipefail
root="$1"

in_root() { chroot "$root" "$@"; }

install -d "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-testbed.network" <<'NET'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.100/24
Gateway=10.0.2.2
DNS=10.0.2.3
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
in_root systemctl enable systemd-networkd.service
ln -sfn /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"

cat >"$root/usr/local/sbin/testbed-seed" <<'SEED'
#!/bin/sh
# Copies the test bed's seed disk (/dev/vdb) over / (see testbed-seed.service).
set -eu
dir=/run/testbed-seed
mkdir -p "$dir"
mount -o ro /dev/vdb "$dir"
tar -C "$dir" --exclude=./lost+found -cf - . | tar -C / --no-overwrite-dir -xpf -
umount "$dir"
rmdir "$dir"
if [ -s /etc/hostname ]; then hostname -F /etc/hostname; fi
SEED
chmod 0755 "$root/usr/local/sbin/testbed-seed"
cat >"$root/etc/systemd/system/testbed-seed.service" <<'UNIT'
[Unit]
Description=Test bed per-target files from /dev/vdb
DefaultDependencies=no
BindsTo=dev-vdb.device
After=dev-vdb.device local-fs.target
Before=sysinit.target ssh.service systemd-networkd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/testbed-seed

[Install]
WantedBy=sysinit.target
UNIT
in_root systemctl enable testbed-seed.service

# Root on /dev/vda, mounted rw by the kernel (root=/dev/vda rw): no fstab, no fsck.
printf '/dev/vda\t/\text4\tdefaults\t0\t0\n' >"$root/etc/fstab"
for unit in getty@tty1.service systemd-fsck-root.service; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
done
