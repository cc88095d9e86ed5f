#!/usr/bin/env bash
# Prepares the test bed (host packages, moto and ansible-core venvs, test
# keys, target rootfs) and prints its directory. Quick when everything is
# cached.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
. "$here/common.sh"
need_root
"$here/install.sh"
"$here/build-rootfs.sh"
echo "$TESTBED_DIR"
