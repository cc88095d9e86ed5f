#!/usr/bin/env bash
# Builds the VM target's boot files once: the `vm` flavour of the rootfs
# (build-rootfs.sh vm: the Debian rootfs plus linux-image-cloud-amd64,
# systemd-networkd and the seed unit of rootfs-customize-vm.sh), made into an
# ext4 image without mounting anything (mkfs.ext4 -d), and the kernel and
# initrd copied out of its /boot. Cached as $TESTBED_DIR/vm-<hash>/
# {root.ext4,vmlinuz,initrd.img} (symlink vm), hash = this script + the
# rootfs it was made from. Each VM target boots a qcow2 overlay of root.ext4
# (crates/testbed/src/vm.rs). Installs qemu-system-x86 and qemu-utils on the
# host if missing. A no-op when cached.
#
# Not part of the default setup (setup.sh runs it when TESTBED_VM=1): only
# the kernel-facing tests (tests/tests/provision_vm_kernel.rs) use it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

# Size of the image's file system (sparse; the overlays grow on write).
SIZE="${TESTBED_VM_DISK_SIZE:-6G}"

missing=()
for p in qemu-system-x86 qemu-utils e2fsprogs; do
    st="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [ "$st" = installed ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    # All of them at once: qemu-system-x86 and qemu-utils must be of one
    # version, and installing one alone may remove the other.
    missing=(qemu-system-x86 qemu-utils e2fsprogs)
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
fi

"$TESTBED_SCRIPTS/build-rootfs.sh" vm
ROOTFS="$(readlink -f "$TESTBED_DIR/rootfs-vm")"

exec 9>"$TESTBED_DIR/.build-vm-image.lock"
flock 9

hash="$( (cat "${BASH_SOURCE[0]}"; basename "$ROOTFS"; echo "$SIZE") | sha256sum | cut -c1-16)"
OUT="$TESTBED_DIR/vm-$hash"
link_current() {
    ln -sfn "vm-$hash" "$TESTBED_DIR/.vm.link.tmp"
    mv -Tf "$TESTBED_DIR/.vm.link.tmp" "$TESTBED_DIR/vm"
}
if [ -f "$OUT/root.ext4" ]; then
    [ "$(readlink "$TESTBED_DIR/vm" 2>/dev/null)" = "vm-$hash" ] || link_current
    log "vm image up to date: $OUT"
    exit 0
fi

start=$(date +%s)
tmp="$TESTBED_DIR/.vm-$hash.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
# The newest kernel of the rootfs (there is one) and its initrd.
kernel="$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n1)"
[ -n "$kernel" ] || die "no kernel in $ROOTFS/boot"
initrd="$ROOTFS/boot/initrd.img-${kernel##*/vmlinuz-}"
[ -f "$initrd" ] || die "no initrd $initrd"
cp "$kernel" "$tmp/vmlinuz"
cp "$initrd" "$tmp/initrd.img"
# The file system from the directory, as root (owners and modes kept), no
# mount; no journal replay concerns: the base is only ever read (overlays).
mkfs.ext4 -q -F -L testbed-root -E root_owner=0:0 -d "$ROOTFS" "$tmp/root.ext4" "$SIZE"
mv -T "$tmp" "$OUT"
trap - EXIT
link_current
log "vm image built in $(( $(date +%s) - start )) s: $OUT"

for old in "$TESTBED_DIR"/vm-????????????????; do
    [ -d "$old" ] && [ "$old" != "$OUT" ] || continue
    # An image in use has a qemu reading it (its run dir's overlay points at it).
    if grep -rqsF "$old/root.ext4" "$TESTBED_DIR"/run/*/vm-base 2>/dev/null; then
        log "keeping $old (in use)"
    else
        log "removing old vm image $old"
        rm -rf "$old"
    fi
done
