#!/usr/bin/env bash
# Prepares the test bed (host packages, moto and ansible-core venvs, test
# keys, target rootfs, the local RPM repository and the RPM target rootfs)
# and prints its directory. Quick when everything is cached.
# TESTBED_VM=1 also builds the VM target's image (build-vm-image.sh: qemu on
# the host, the rootfs with a Debian kernel as ext4; ~2.5 min once), which
# only the kernel-facing tests use.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/common.sh"
need_root
"$here/install.sh"
"$here/build-rootfs.sh"
"$here/build-rpm-repo.sh"
"$here/build-rootfs.sh" rpm
if [ "${TESTBED_VM:-0}" = 1 ]; then
    "$here/build-vm-image.sh"
fi
echo "$TESTBED_DIR"
