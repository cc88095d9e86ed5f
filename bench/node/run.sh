#!/usr/bin/env bash
# On-demand benchmark (not in CI) of the main job, the way image-builder
# users run it: `image-cli build --only ubuntu-2404` of the built-in
# definition (node recipe images/node/node.yml + goss verify of
# images/node/goss) vs packer 1.6.6 amazon-ebs with packer's `ansible`
# provisioner running the same images/node/node.yml with ansible-core and
# the same variables (no verify step on the packer side: goss is only on
# GitHub). Same moto + fault proxy settings as bench/build/run.sh (50 ms per
# call, images pending for 3 polls, AWS_POLL_DELAY_SECONDS=2 for both), 3
# copy regions, a fresh nspawn target per tool run. Prints a markdown table
# (wall time median of ROUNDS, ratio, EC2 calls, provisioning changed=N,
# peak RSS, target provisioned and nothing left in moto), then where the
# time goes: each tool's run cut into phases (AWS set-up, launch, SSH,
# provisioning split per slow task, verify, stop, AMI + wait, copies + wait,
# sharing, cleanup) against the floor both share, measured each round on a
# fresh target (the recipe's apt commands run bare, no SSH and no tool; the
# images' pending time at this poll interval), and each tool's time above it.
#
#   [RELEASE=1] bench/node/run.sh [ROUNDS] [extra args of tests/examples/bench_node.rs]
#   bench/node/run.sh 1
#   RELEASE=1 bench/node/run.sh 3          # image-cli as released (optimized)
#   bench/node/run.sh 1 --no-floor          # without the floor run
#   bench/node/run.sh 2 --packer-proxy      # packer's default SSH proxy adapter
#   bench/node/run.sh 1 --skip-packer
#
# A round takes ~2-3 min; the base packages come from the Debian mirror,
# whose speed varies run to run (use 3+ rounds for a stable median). Needs
# root and the test bed (scripts/testbed/setup.sh), dpkg-dev and gnupg (the
# fixtures); installs Debian's packer (1.6.6) with apt and ansible (PyPI
# `ansible`: ansible-core plus ansible.posix/community.general) in
# $IMAGE_TESTBED_DIR/ansible-venv when missing. Each run's template, logs
# and manifest stay in the printed logs dir (BENCH_LOG_DIR to choose it).
set -euo pipefail
rounds=${1:-1}
[ $# -gt 0 ] && shift
. "$(dirname "$0")/../lib.sh"
bench_setup
venv=$IMAGE_TESTBED_DIR/ansible-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
    echo "installing ansible in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ansible
fi
"$venv/bin/ansible-playbook" --version | sed -n 1p >&2

# A debug build by default (the shared target dir has it); RELEASE=1 for
# an optimized one, as users run it (a long first build: aws-sdk-ec2).
if [ "${RELEASE:-0}" = 1 ]; then
    cargo build -q --locked --release -p image-cli --bin image-cli
    cli=$CARGO_TARGET_DIR/release/image-cli
else
    cargo build -q --locked -p image-cli --bin image-cli
    cli=$CARGO_TARGET_DIR/debug/image-cli
fi
cargo build -q --locked -p tests --example bench_node
log=${BENCH_LOG_DIR:-$(mktemp -d -t bench-node-XXXXXX)}
mkdir -p "$log"
exec "$CARGO_TARGET_DIR/debug/examples/bench_node" \
    --image-cli "$cli" \
    --packer "$(command -v packer)" \
    --ansible-playbook "$venv/bin/ansible-playbook" \
    --rounds "$rounds" --log-dir "$log" "$@"
