#!/usr/bin/env bash
# On-demand benchmark (issues #5, #16; not in CI): `image-cli build` vs
# packer 1.6.6 amazon-ebs on the same moto behind the fault proxy (50 ms per
# call; every new image pending 20 s after the CreateImage / CopyImage call
# that made it, as on EC2), each tool polling as it likes (no
# AWS_POLL_DELAY_SECONDS: packer's defaults, image-cli's defaults), the same
# booted SSH target, a one-command provisioning step, copies to 3 regions;
# wall time (median of ROUNDS), the floor the pending times impose (the AMI,
# then its copies in parallel: 40 s), each tool's overhead above it, EC2
# calls per build (moto's recorder; DescribeImages apart); then the same
# with images available at once.
# Then 50 builds at once (`image-cli build --parallel-builds 50`) through a
# throttling proxy: all succeed, nothing left, peak RSS.
# `--pending-secs 0 [--pending 3 --poll-secs 2]` runs the old definition
# (images pending for N polls, both tools polling every 2 s).
#
#   bench/build/run.sh [ROUNDS] [extra args of tests/examples/bench_build.rs]
#   bench/build/run.sh 3 --skip-parallel
#   bench/build/run.sh 1 --pending-secs 60
#   bench/build/run.sh 1 --skip-packer --parallel 50
#
# Needs root and the test bed (scripts/testbed/setup.sh); installs Debian's
# packer (1.6.6) with apt if it is missing.
set -euo pipefail
rounds=${1:-3}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/../lib.sh"
bench_setup

cargo build -q --locked -p image-cli --bin image-cli
cargo build -q --locked -p tests --example bench_build
exec "$CARGO_TARGET_DIR/debug/examples/bench_build" \
    --image-cli "$CARGO_TARGET_DIR/debug/image-cli" \
    --packer "$(command -v packer)" --rounds "$rounds" "$@"
