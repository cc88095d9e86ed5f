#!/usr/bin/env bash
# Builds the Debian bookworm target rootfs once with mmdebstrap and caches it
# as $TESTBED_DIR/rootfs-<hash>, hash = sha256 of the recipe (this script, the
# customize hook and the test keys' public halves). $TESTBED_DIR/rootfs is a
# symlink to the current one. A no-op (well under a second) when cached.
#
# `build-rootfs.sh rpm` builds the RPM-managed flavour instead:
# $TESTBED_DIR/rootfs-rpm-<hash> (symlink rootfs-rpm), the same rootfs plus
# rpm and dnf, customized by rootfs-customize-rpm.sh (an rpm database, an
# Amazon Linux 2023 look-alike os-release, no apt); its hash also covers
# that hook and the local RPM repository (build-rpm-repo.sh, run first).
#
# The Debian mirror is read from the host's apt configuration at run time;
# override with TESTBED_MIRROR / TESTBED_SECURITY_MIRROR if needed.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,sudo,python3,iproute2,ca-certificates,procps,kmod,curl,gnupg,tar,gzip
HOOK="$TESTBED_SCRIPTS/rootfs-customize.sh"
KEYS="$TESTBED_DIR/keys"
FLAVOR="${1:-debian}"
case "$FLAVOR" in
    debian) PREFIX=rootfs ; RECIPE_EXTRA=() ;;
    rpm)
        PREFIX=rootfs-rpm
        PACKAGES="$PACKAGES,rpm,dnf"
        RPM_HOOK="$TESTBED_SCRIPTS/rootfs-customize-rpm.sh"
        RPM_REPO="$(readlink -f "$TESTBED_DIR/rpm-repo")" \
            || die "no $TESTBED_DIR/rpm-repo: run build-rpm-repo.sh first"
        RECIPE_EXTRA=("$RPM_HOOK" "$RPM_REPO"/release/*.rpm)
        ;;
    vm)
        # Booted by qemu with its own kernel (build-vm-image.sh).
        PREFIX=rootfs-vm
        PACKAGES="$PACKAGES,linux-image-cloud-amd64,initramfs-tools"
        VM_HOOK="$TESTBED_SCRIPTS/rootfs-customize-vm.sh"
        RECIPE_EXTRA=("$VM_HOOK")
        ;;
    *) die "unknown rootfs flavour $FLAVOR (debian, rpm, vm)" ;;
esac

mkdir -p "$TESTBED_DIR"
exec 9>"$TESTBED_DIR/.build-rootfs.lock"
flock 9

# --- test keys (their public halves are part of the recipe) ---------------
mkdir -p "$KEYS"
chmod 0700 "$KEYS"
for spec in ed25519: rsa:3072; do
    type="${spec%%:*}" bits="${spec#*:}"
    key="$KEYS/id_$type"
    if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
        log "generating test key $key"
        rm -f "$key.tmp" "$key.tmp.pub"
        ssh-keygen -q -t "$type" ${bits:+-b "$bits"} -N '' -C "image-testbed-$type" -f "$key.tmp"
        chmod 0600 "$key.tmp"
        mv -f "$key.tmp.pub" "$key.pub"
        mv -f "$key.tmp" "$key"
    fi
done

# --- recipe hash -----------------------------------------------------------
hash="$( (cat "${BASH_SOURCE[0]}" "$HOOK" "$KEYS/id_ed25519.pub" "$KEYS/id_rsa.pub" \
    "${RECIPE_EXTRA[@]}"; echo "$FLAVOR") | sha256sum | cut -c1-16)"
ROOTFS="$TESTBED_DIR/$PREFIX-$hash"

link_current() {
    ln -sfn "$PREFIX-$hash" "$TESTBED_DIR/.$PREFIX.link.tmp"
    mv -Tf "$TESTBED_DIR/.$PREFIX.link.tmp" "$TESTBED_DIR/$PREFIX"
}

if [ -d "$ROOTFS" ]; then
    [ "$(readlink "$TESTBED_DIR/$PREFIX" 2>/dev/null)" = "$PREFIX-$hash" ] || link_current
    log "$PREFIX up to date: $ROOTFS"
    exit 0
fi

# --- mirrors from the host's apt configuration -------------------------------
# Prints "URI SUITE" pairs for every deb source the host has.
host_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        # deb822: stanzas separated by blank lines.
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && enabled != "no")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                types = ""; enabled = ""; nu = 0; ns = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                if (key == "types") { types = ""; for (i = 2; i <= NF; i++) types = types " " $i; sub(/^ /, "", types) }
                else if (key == "enabled") enabled = tolower($2)
                else if (key == "uris") { nu = 0; for (i = 2; i <= NF; i++) u[++nu] = $i }
                else if (key == "suites") { ns = 0; for (i = 2; i <= NF; i++) s[++ns] = $i }
            }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        # one-line format: deb [options] URI SUITE COMPONENTS...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
    done
}

sources="$(host_sources)"
pick() { # $1 = suite regex; prints the first URI serving it
    awk -v re="$1" '$2 ~ re { print $1; exit }' <<<"$sources"
}
MIRROR="${TESTBED_MIRROR:-$(pick "^$SUITE(-updates)?\$")}"
SECURITY="${TESTBED_SECURITY_MIRROR:-$(pick "^$SUITE/updates\$|^$SUITE-security\$")}"
# If the host is not bookworm, take any Debian archive/security URI it uses.
[ -n "$MIRROR" ] || MIRROR="$(awk '$1 ~ /\/debian\/?$/ { print $1; exit }' <<<"$sources")"
[ -n "$SECURITY" ] || SECURITY="$(awk '$1 ~ /\/debian-security\/?$/ { print $1; exit }' <<<"$sources")"
[ -n "$MIRROR" ] || die "no Debian mirror found in the host's apt sources (set TESTBED_MIRROR)"

mirror_lines=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
if [ -n "$SECURITY" ]; then
    mirror_lines+=("deb $SECURITY $SUITE-security main")
else
    log "warning: no security archive in the host's apt sources; building without $SUITE-security"
fi

# --- build -------------------------------------------------------------------
log "building $PREFIX $ROOTFS (mirror: $MIRROR${SECURITY:+, security: $SECURITY})"
tmp="$TESTBED_DIR/.$PREFIX-$hash.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
hooks=(--customize-hook="\"$HOOK\" \"\$1\"")
case "$FLAVOR" in
    rpm) hooks+=(--customize-hook="\"$RPM_HOOK\" \"\$1\" \"$RPM_REPO\"") ;;
    vm) hooks+=(--customize-hook="\"$VM_HOOK\" \"\$1\"") ;;
esac
TESTBED_KEYS_DIR="$KEYS" mmdebstrap --quiet --mode=root --variant=minbase \
    --include="$PACKAGES" "${hooks[@]}" \
    "$SUITE" "$tmp" "${mirror_lines[@]}"
mv -T "$tmp" "$ROOTFS"
trap - EXIT
link_current
log "$PREFIX built in $(( $(date +%s) - start )) s: $ROOTFS"

# Remove builds of older recipes of this flavour that no overlay mount still
# uses (the hash is 16 hex digits: rootfs-* alone would match rootfs-rpm-*).
for old in "$TESTBED_DIR/$PREFIX"-????????????????; do
    [ -d "$old" ] && [ "$old" != "$ROOTFS" ] || continue
    if grep -qF "$old" /proc/mounts; then
        log "keeping $old (still mounted)"
    else
        log "removing old rootfs $old"
        rm -rf "$old"
    fi
done
