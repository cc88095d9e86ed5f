#!/usr/bin/env bash
# Prepares the test bed (host packages, moto and ansible-core venvs, test
# keys, target rootfs, the local RPM repository and the RPM target rootfs)
# and prints its directory. Quick when everything is cached.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/common.sh"
need_root
"$here/install.sh"
"$here/build-rootfs.sh"
"$here/build-rpm-repo.sh"
"$here/build-rootfs.sh" rpm
echo "$TESTBED_DIR"
