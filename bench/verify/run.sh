#!/usr/bin/env bash
# On-demand benchmark (not in CI): `image-cli verify` vs pytest-testinfra
# over paramiko, 100 checks (package, file, service, command, kernel-param,
# user, group: goss-100.yaml / test_bench.py) against one booted test bed
# target (scripts/testbed/setup.sh must have run; root).
#
#   bench/verify/run.sh [ROUNDS]     (default 5; the best round is reported)
#
# testinfra and paramiko are installed in a venv under the test bed dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/image-builder-rs/target}
tb=${IMAGE_TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed}
venv=$tb/bench-venv

if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import testinfra, paramiko' 2>/dev/null; then
    echo "installing pytest-testinfra and paramiko in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pytest-testinfra paramiko
fi

cd "$root"
cargo build -q -p image-cli
cargo build -q -p image-verify --example bench_target
cli=$CARGO_TARGET_DIR/debug/image-cli

# Boot a target; it stays up while our end of the pipe is open.
coproc BED { "$CARGO_TARGET_DIR/debug/examples/bench_target"; }
read -r ready port key user <&"${BED[0]}"
[ "$ready" = READY ] || { echo "target did not boot" >&2; exit 1; }
trap 'exec {BED[1]}>&-; wait "$BED_PID" 2>/dev/null || true' EXIT

now() { date +%s.%N; }
best() { sort -g | head -1; }

ours=()
for _ in $(seq "$rounds"); do
    t0=$(now)
    "$cli" verify --host "$user@127.0.0.1:$port" --identity "$key" -f silent "$here/goss-100.yaml" \
        || { "$cli" verify --host "$user@127.0.0.1:$port" --identity "$key" -f documentation "$here/goss-100.yaml"; exit 1; }
    t1=$(now)
    ours+=("$(echo "$t1 - $t0" | bc -l)")
done
checks=$("$cli" verify --host "$user@127.0.0.1:$port" --identity "$key" -f json "$here/goss-100.yaml" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin)["summary"]; print(d["test-count"], d["total-duration"]/1e9)')
read -r count inner <<<"$checks"

theirs=()
for _ in $(seq "$rounds"); do
    t0=$(now)
    "$venv/bin/pytest" -q -p no:cacheprovider --hosts="paramiko://$user@127.0.0.1:$port" \
        --ssh-identity-file="$key" "$here/test_bench.py" >/tmp/bench-testinfra.log 2>&1 \
        || { tail -30 /tmp/bench-testinfra.log; exit 1; }
    t1=$(now)
    theirs+=("$(echo "$t1 - $t0" | bc -l)")
done
tests=$(grep -Eo '[0-9]+ passed' /tmp/bench-testinfra.log | head -1)

o=$(printf '%s\n' "${ours[@]}" | best)
t=$(printf '%s\n' "${theirs[@]}" | best)
printf '\n| tool | checks | best of %s (wall, incl. connect) |\n|---|---|---|\n' "$rounds"
printf '| image-cli verify (ssh2) | %s | %.3f s (checks alone: %.3f s) |\n' "$count" "$o" "$inner"
printf '| pytest-testinfra (paramiko) | %s | %.3f s |\n' "${tests% passed}" "$t"
printf '| ratio | | %.1fx |\n' "$(echo "$t / $o" | bc -l)"
