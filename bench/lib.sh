# shellcheck shell=bash
# Sourced by bench/build/run.sh and bench/node/run.sh.

# bench_setup: into the workspace root with the cache locations of
# scripts/env.sh, the test bed set up (scripts/testbed/setup.sh), and
# Debian's packer (1.6.6) installed with apt when it is missing.
bench_setup() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    . scripts/env.sh
    scripts/testbed/setup.sh >/dev/null
    if ! command -v packer >/dev/null; then
        echo "installing packer (Debian's 1.6.6)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q packer >/dev/null
    fi
    packer version >&2
}
