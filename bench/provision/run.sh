#!/usr/bin/env bash
# On-demand benchmark (not in CI), issue #3: `image-cli provision` vs
# ansible-core on the same 100-task play (tasks-100.yml), each on a fresh
# test bed target (Debian bookworm in systemd-nspawn; scripts/testbed/setup.sh
# must have run; root): first run, idempotent re-run, ratios. Run it on an
# otherwise idle machine (2 cores: a parallel build or test skews both tools).
#
#   [RELEASE=1] bench/provision/run.sh [RERUNS]    (default 3; the best re-run is reported)
#
# ansible-core comes from the `ansible` package (for ansible.posix.sysctl) in
# a venv under the test bed dir (installed when missing), with pipelining and
# SSH ControlPersist, as fast as ansible gets. Both tools gather facts and
# become root through sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reruns=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/image-builder-rs/target}
tb=${IMAGE_TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed}
venv=$tb/ansible-venv

if [ ! -x "$venv/bin/ansible-playbook" ]; then
    echo "installing ansible in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q ansible
fi

cd "$root"
# A debug build by default (the shared target dir has it); RELEASE=1 for
# an optimized one (a long first build: aws-sdk-ec2).
if [ "${RELEASE:-0}" = 1 ]; then
    cargo build -q --release -p image-cli; cli=$CARGO_TARGET_DIR/release/image-cli
else
    cargo build -q -p image-cli; cli=$CARGO_TARGET_DIR/debug/image-cli
fi
cargo build -q -p image-provision --example testbed_targets

# Two fresh targets; they stay up while our end of the pipe is open.
coproc BED { "$CARGO_TARGET_DIR/debug/examples/testbed_targets" 2; }
read -r port_a _ <&"${BED[0]}"
read -r port_b _ <&"${BED[0]}"
read -r _ key <&"${BED[0]}"
read -r _ user <&"${BED[0]}"
read -r ready <&"${BED[0]}"
[ "$ready" = ready ] || { echo "targets did not boot" >&2; exit 1; }
ctl=$(mktemp -d)
trap 'exec {BED[1]}>&-; wait "$BED_PID" 2>/dev/null || true; rm -rf "$ctl"' EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
recap() { grep -Eo 'changed=[0-9]+' "$1" | tail -1 | cut -d= -f2; }

ours() {
    "$cli" provision --host "$user@127.0.0.1:$port_a" --identity "$key" "$here/tasks-100.yml" >"$1" 2>&1 \
        || { tail -30 "$1"; exit 1; }
}
export ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False \
    ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=300s -o ControlPath=$ctl/%C -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" \
    ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_NOCOLOR=1
theirs() {
    "$venv/bin/ansible-playbook" -i "127.0.0.1," -e "ansible_port=$port_b" -u "$user" \
        --private-key "$key" "$here/tasks-100.yml" >"$1" 2>&1 || { tail -30 "$1"; exit 1; }
}

log=${BENCH_LOG_DIR:-$(mktemp -d)}
mkdir -p "$log"
t0=$(now); ours "$log/ours-1"; t1=$(now); o_first=$(secs "$t0" "$t1"); o_first_ch=$(recap "$log/ours-1")
t0=$(now); theirs "$log/theirs-1"; t1=$(now); a_first=$(secs "$t0" "$t1"); a_first_ch=$(recap "$log/theirs-1")
o_re=(); a_re=()
for i in $(seq "$reruns"); do
    t0=$(now); ours "$log/ours-r$i"; t1=$(now); o_re+=("$(secs "$t0" "$t1")")
    [ "$(recap "$log/ours-r$i")" = 0 ] || { echo "image-cli re-run $i changed something:" >&2; grep '^changed' "$log/ours-r$i" >&2; exit 1; }
    t0=$(now); theirs "$log/theirs-r$i"; t1=$(now); a_re+=("$(secs "$t0" "$t1")")
    [ "$(recap "$log/theirs-r$i")" = 0 ] || { echo "ansible re-run $i changed something:" >&2; grep -B1 '^changed' "$log/theirs-r$i" >&2; exit 1; }
done
best() { printf '%s\n' "$@" | sort -g | head -1; }
o_rerun=$(best "${o_re[@]}"); a_rerun=$(best "${a_re[@]}")

printf '\n100 tasks (bench/provision/tasks-100.yml), fresh targets, wall time incl. connect and facts\n\n'
printf '| run | image-cli provision | ansible-core %s (pipelining, ControlPersist) | ratio |\n|---|---|---|---|\n' \
    "$("$venv/bin/ansible-playbook" --version 2>/dev/null | sed -n '1s/[^0-9]*\([0-9.]*\).*/\1/p')"
printf '| first run | %.2f s (changed=%s) | %.2f s (changed=%s) | %.1fx |\n' \
    "$o_first" "$o_first_ch" "$a_first" "$a_first_ch" "$(echo "$a_first / $o_first" | bc -l)"
printf '| idempotent re-run (best of %s) | %.2f s (changed=0) | %.2f s (changed=0) | %.1fx |\n' \
    "$reruns" "$o_rerun" "$a_rerun" "$(echo "$a_rerun / $o_rerun" | bc -l)"
printf '\nlogs: %s (load average now: %s)\n' "$log" "$(cut -d' ' -f1-3 /proc/loadavg)"
