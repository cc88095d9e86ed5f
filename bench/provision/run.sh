#!/usr/bin/env bash
# On-demand benchmark (not in CI), issues #3 and #16: `image-cli provision` vs
# ansible-core on the same 100-task plays, each tool on a fresh test bed
# target (Debian bookworm in systemd-nspawn; scripts/testbed/setup.sh must
# have run; root): first run, idempotent re-run, ratios, and a per-module
# table (ms/task and SSH round trips/task for image-cli, ms/task for
# ansible-core from its profile_tasks callback) so a slow module shows.
# Run it on an otherwise idle machine (2 cores: a parallel build or test
# skews both tools).
#
#   [RELEASE=1] [WORKLOAD=both|hand|gen] [SEED=1] [ANSIBLE=0] bench/provision/run.sh [RERUNS]
#
# Workloads: `hand` is tasks-100.yml (hand-written); `gen` is 100 tasks
# generated from SEED across the modules that make sense on Debian, with
# loops, handlers and facts (crates/image-provision/examples/bench_provision.rs;
# its get_url/uri tasks use an HTTP server this script starts). RERUNS
# defaults to 3; the best re-run is reported. ANSIBLE=0 runs image-cli only
# (while working on a module).
#
# ansible-core 2.19 is the test bed's (ansible-core-venv, with ansible.posix
# and community.general), with pipelining and SSH ControlPersist, as fast as
# ansible gets. Both tools gather facts and become root through sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reruns=${1:-3}
workload=${WORKLOAD:-both}
seed=${SEED:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/image-builder-rs/target}
tb=${IMAGE_TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed}
venv=$tb/ansible-core-venv
if [ ! -x "$venv/bin/ansible-playbook" ]; then
    venv=$tb/ansible-venv
    if [ ! -x "$venv/bin/ansible-playbook" ]; then
        echo "installing ansible in $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q ansible
    fi
fi

cd "$root"
# A debug build by default (the shared target dir has it); RELEASE=1 for
# an optimized one (a long first build: aws-sdk-ec2).
if [ "${RELEASE:-0}" = 1 ]; then
    cargo build -q --release -p image-cli; cli=$CARGO_TARGET_DIR/release/image-cli
else
    cargo build -q -p image-cli; cli=$CARGO_TARGET_DIR/debug/image-cli
fi
cargo build -q -p image-provision --example testbed_targets --example bench_provision
ex=$CARGO_TARGET_DIR/debug/examples

log=${BENCH_LOG_DIR:-$(mktemp -d)}
mkdir -p "$log"
ctl=$(mktemp -d)
http_pid=
cleanup() {
    [ -z "$http_pid" ] || kill "$http_pid" 2>/dev/null || true
    rm -rf "$ctl"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
recap_ours() { grep -Eo '"changed":[0-9]+' "$1" | tail -1 | cut -d: -f2; }
recap_theirs() { grep -Eo 'changed=[0-9]+' "$1" | tail -1 | cut -d= -f2; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
argbest() { # index (1-based) of the smallest value
    local i=0 bi=1 bv=
    for v in "$@"; do i=$((i + 1)); if [ -z "$bv" ] || [ "$(echo "$v < $bv" | bc -l)" = 1 ]; then bv=$v; bi=$i; fi; done
    echo "$bi"
}

export ANSIBLE_PIPELINING=1 ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False \
    ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=300s -o ControlPath=$ctl/%C -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" \
    ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_NOCOLOR=1 \
    ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=all PROFILE_TASKS_SORT_ORDER=none
a_version=$("$venv/bin/ansible-playbook" --version 2>/dev/null | sed -n '1s/[^0-9]*\([0-9.]*\).*/\1/p')

# bench_one NAME PLAYBOOK [EXTRA -e ARGS...]: two fresh targets, one per tool.
bench_one() {
    local name=$1 play=$2; shift 2
    local extra=("$@")
    coproc BED { "$ex/testbed_targets" 2; }
    local port_a port_b key user ready
    read -r port_a _ <&"${BED[0]}"
    read -r port_b _ <&"${BED[0]}"
    read -r _ key <&"${BED[0]}"
    read -r _ user <&"${BED[0]}"
    read -r ready <&"${BED[0]}"
    [ "$ready" = ready ] || { echo "targets did not boot" >&2; exit 1; }
    local l=$log/$name
    mkdir -p "$l/fetch-ours" "$l/fetch-theirs"
    ours() {
        "$cli" provision --json --host "$user@127.0.0.1:$port_a" --identity "$key" "${extra[@]}" \
            -e "bench_fetch=$l/fetch-ours" "$play" >"$1" 2>&1 || { tail -30 "$1"; exit 1; }
    }
    theirs() {
        if [ "${ANSIBLE:-1}" = 0 ]; then echo "changed=0 (not run)" >"$1"; return; fi
        "$venv/bin/ansible-playbook" -i "127.0.0.1," -e "ansible_port=$port_b" -u "$user" \
            --private-key "$key" "${extra[@]}" -e "bench_fetch=$l/fetch-theirs" "$play" >"$1" 2>&1 \
            || { tail -30 "$1"; exit 1; }
    }
    local t0 t1 o_first a_first o_first_ch a_first_ch i
    t0=$(now); ours "$l/ours-1"; t1=$(now); o_first=$(secs "$t0" "$t1"); o_first_ch=$(recap_ours "$l/ours-1")
    t0=$(now); theirs "$l/theirs-1"; t1=$(now); a_first=$(secs "$t0" "$t1"); a_first_ch=$(recap_theirs "$l/theirs-1")
    local o_re=() a_re=()
    for i in $(seq "$reruns"); do
        t0=$(now); ours "$l/ours-r$i"; t1=$(now); o_re+=("$(secs "$t0" "$t1")")
        [ "$(recap_ours "$l/ours-r$i")" = 0 ] || { echo "image-cli re-run $i changed something:" >&2; grep '"outcome":"changed"' "$l/ours-r$i" >&2; exit 1; }
        t0=$(now); theirs "$l/theirs-r$i"; t1=$(now); a_re+=("$(secs "$t0" "$t1")")
        [ "$(recap_theirs "$l/theirs-r$i")" = 0 ] || { echo "ansible re-run $i changed something:" >&2; grep -B1 '^changed' "$l/theirs-r$i" >&2; exit 1; }
    done
    exec {BED[1]}>&-
    wait "$BED_PID" 2>/dev/null || true
    local o_rerun a_rerun ob ab
    o_rerun=$(best "${o_re[@]}"); a_rerun=$(best "${a_re[@]}")
    ob=$(argbest "${o_re[@]}"); ab=$(argbest "${a_re[@]}")

    printf '\n## %s: 100 tasks (%s), fresh targets, wall time incl. connect and facts\n\n' "$name" "${play#"$root"/}"
    printf '| run | image-cli provision | ansible-core %s (pipelining, ControlPersist) | ratio |\n|---|---|---|---|\n' "$a_version"
    printf '| first run | %.2f s (changed=%s) | %.2f s (changed=%s) | %.1fx |\n' \
        "$o_first" "$o_first_ch" "$a_first" "$a_first_ch" "$(echo "$a_first / $o_first" | bc -l)"
    printf '| idempotent re-run (best of %s) | %.2f s (changed=0) | %.2f s (changed=0) | %.1fx |\n\n' \
        "$reruns" "$o_rerun" "$a_rerun" "$(echo "$a_rerun / $o_rerun" | bc -l)"
    printf 'Per module (first run; best re-run), slowest image-cli re-run first:\n\n'
    if [ "${ANSIBLE:-1}" = 0 ]; then
        "$ex/bench_provision" table "$play" "$l/ours-1" "$l/ours-r$ob"
    else
        "$ex/bench_provision" table "$play" "$l/ours-1" "$l/ours-r$ob" "$l/theirs-1" "$l/theirs-r$ab"
    fi
}

if [ "$workload" = both ] || [ "$workload" = hand ]; then
    bench_one hand "$here/tasks-100.yml"
fi
if [ "$workload" = both ] || [ "$workload" = gen ]; then
    gen=$log/gen-$seed
    "$ex/bench_provision" gen "$seed" "$gen"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$gen/www" "$port" >"$log/http.log" 2>&1 &
    http_pid=$!
    # The guest reaches the host's 127.0.0.1 at 10.0.2.2.
    bench_one "gen-seed-$seed" "$gen/tasks.yml" -e "bench_http=http://10.0.2.2:$port"
fi
printf '\nlogs: %s (load average now: %s)\n' "$log" "$(cut -d' ' -f1-3 /proc/loadavg)"
