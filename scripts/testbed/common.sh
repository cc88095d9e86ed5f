# shellcheck shell=bash
# Shared settings for the test bed scripts (sourced, not executed).

# Where everything the test bed builds or runs lives. Keep in sync with
# image_testbed::testbed_dir() in crates/testbed/src/lib.rs.
TESTBED_DIR="${IMAGE_TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed}"
export TESTBED_DIR

# Pinned moto version for the EC2 API stand-in.
MOTO_VERSION="5.2.5"

TESTBED_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export TESTBED_SCRIPTS

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (systemd-nspawn, overlayfs, mmdebstrap)"
}
