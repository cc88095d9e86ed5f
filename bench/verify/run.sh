#!/usr/bin/env bash
# On-demand benchmark (not in CI): `image-cli verify` vs pytest-testinfra
# over paramiko on one booted test bed target (scripts/testbed/setup.sh must
# have run; root), on two workloads:
#
# - hand: goss-100.yaml / test_bench.py, 100 hand-written checks (package,
#   file, service, command, kernel-param, user, group);
# - gen:  a goss file of CHECKS checks generated from SEED by gen.py across
#   every resource type and attribute image-verify has, drawn from what the
#   target really has, with about 10% false on purpose (test_goss.py runs
#   the same checks with testinfra; both tools must find exactly those).
#
# image-cli runs twice: gathered (all probes in one script, the default) and
# with IMAGE_VERIFY_GATHER=0 (one exec per resource type, per command and
# per request: how it worked before). Round trips are SSH execs: image-cli's
# own count (its debug log), paramiko's exec_command calls (conftest.py).
#
#   [RELEASE=1] bench/verify/run.sh [ROUNDS [SEED [CHECKS]]]
#                                 (default 5 1 100; the best round is reported)
#
# testinfra, paramiko and PyYAML are installed in a venv under the test bed
# dir. An HTTP server (python3 -m http.server, serving /etc) is started on
# the target for the `http` checks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-5}
seed=${2:-1}
nchecks=${3:-100}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/image-builder-rs/target}
tb=${IMAGE_TESTBED_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/image-builder-rs/testbed}
venv=$tb/bench-venv

if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import testinfra, paramiko, yaml' 2>/dev/null; then
    echo "installing pytest-testinfra, paramiko and PyYAML in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pytest-testinfra paramiko PyYAML
fi

cd "$root"
# A debug build by default; RELEASE=1 for an optimized one.
if [ "${RELEASE:-0}" = 1 ]; then
    cargo build -q --release -p image-cli; cli=$CARGO_TARGET_DIR/release/image-cli
else
    cargo build -q -p image-cli; cli=$CARGO_TARGET_DIR/debug/image-cli
fi
cargo build -q -p image-verify --example bench_target
work=$(mktemp -d)

# Boot a target; it stays up while our end of the pipe is open.
coproc BED { "$CARGO_TARGET_DIR/debug/examples/bench_target"; }
read -r ready port key user <&"${BED[0]}"
[ "$ready" = READY ] || { echo "target did not boot" >&2; exit 1; }
trap 'exec {BED[1]}>&-; wait "$BED_PID" 2>/dev/null || true; rm -rf "$work"' EXIT
host="$user@127.0.0.1:$port"

ssh -q -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=error -i "$key" -p "$port" \
    "$user@127.0.0.1" 'nohup python3 -m http.server 18080 --bind 127.0.0.1 --directory /etc >/dev/null 2>&1 &'
"$venv/bin/python" "$here/gen.py" --host "$host" --key "$key" --seed "$seed" --checks "$nchecks" \
    --out-goss "$work/goss-gen.yaml" --out-checks "$work/checks.json" >&2
planted=$(python3 -c 'import json,sys; print(sum(1 for c in json.load(open(sys.argv[1]))["checks"] if not c["pass"]))' "$work/checks.json")

now() { date +%s.%N; }
best() { sort -g | head -1; }
rows=()

# ours WORKLOAD GOSSFILE GATHER EXPECTED_FAILED CHECKS_JSON|-
ours() {
    local name=$1 file=$2 gather=$3 want=$4 checks=$5 times=() t0 t1 rc
    for _ in $(seq "$rounds"); do
        t0=$(now)
        rc=0
        IMAGE_VERIFY_GATHER=$gather "$cli" verify --host "$host" --identity "$key" -f silent "$file" || rc=$?
        t1=$(now)
        times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    IMAGE_VERIFY_GATHER=$gather RUST_LOG=image_verify=debug "$cli" verify --host "$host" --identity "$key" \
        -f json "$file" >"$work/out.json" 2>"$work/log" || true
    local trips count failed
    trips=$(grep -o 'round_trips=[0-9]*' "$work/log" | tail -1 | cut -d= -f2)
    read -r count failed < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["summary"]; print(d["test-count"], d["failed-count"])' "$work/out.json")
    # The same checks failed as were made false (by resource id).
    local same
    same=$(python3 -c '
import json, sys
got = {r["resource-id"] for r in json.load(open(sys.argv[1]))["results"] if r["result"] == 1}
want = set()
if sys.argv[2] != "-":
    want = {c["id"] for c in json.load(open(sys.argv[2]))["checks"] if not c["pass"]}
print("yes" if got == want else "no: found %s, made false %s" % (sorted(got - want), sorted(want - got)))
' "$work/out.json" "$checks")
    if [ "$failed" != "$want" ] || [ "$same" != yes ]; then
        echo "$same" >&2
        echo "image-cli verify found $failed failed checks in $file, expected $want:" >&2
        "$cli" verify --host "$host" --identity "$key" -f documentation "$file" | grep -iE 'fail|expected' >&2 || true
        exit 1
    fi
    local t label=gathered
    [ "$gather" = 0 ] && label="one exec per type (before)"
    t=$(printf '%s\n' "${times[@]}" | best)
    rows+=("$name|image-cli verify, $label|$count|$failed|$t|$trips")
}

# theirs WORKLOAD TESTFILE
theirs() {
    local name=$1 test=$2 times=() t0 t1
    for _ in $(seq "$rounds"); do
        t0=$(now)
        BENCH_EXECS_FILE=$work/execs GOSS_CHECKS=$work/checks.json \
            "$venv/bin/pytest" -q -p no:cacheprovider --hosts="paramiko://$host" \
            --ssh-identity-file="$key" "$test" >"$work/testinfra.log" 2>&1 \
            || { tail -30 "$work/testinfra.log"; exit 1; }
        t1=$(now)
        times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    local passed t
    passed=$(grep -Eo '[0-9]+ passed' "$work/testinfra.log" | head -1)
    t=$(printf '%s\n' "${times[@]}" | best)
    rows+=("$name|pytest-testinfra (paramiko)|${passed% passed}|-|$t|$(cat "$work/execs")")
}

ours hand "$here/goss-100.yaml" 0 0 -
ours hand "$here/goss-100.yaml" 1 0 -
theirs hand "$here/test_bench.py"
ours "gen (seed $seed)" "$work/goss-gen.yaml" 0 "$planted" "$work/checks.json"
ours "gen (seed $seed)" "$work/goss-gen.yaml" 1 "$planted" "$work/checks.json"
theirs "gen (seed $seed)" "$here/test_goss.py"

printf '\nRELEASE=%s bench/verify/run.sh %s %s %s; %s, %s cores; best of %s, wall time incl. connect\n\n' \
    "${RELEASE:-0}" "$rounds" "$seed" "$nchecks" "$(uname -r)" "$(nproc)" "$rounds"
printf '| workload | tool | checks | failed | wall | round trips | testinfra / tool |\n|---|---|---|---|---|---|---|\n'
for r in "${rows[@]}"; do
    IFS='|' read -r w tool n f t trips <<<"$r"
    ti=$(for x in "${rows[@]}"; do IFS='|' read -r w2 tool2 _ _ t2 _ <<<"$x"; [ "$w2" = "$w" ] && [ "${tool2#pytest}" != "$tool2" ] && echo "$t2"; done; true)
    printf '| %s | %s | %s | %s | %.3f s | %s | %.1fx |\n' "$w" "$tool" "$n" "$f" "$t" "$trips" "$(echo "$ti / $t" | bc -l)"
done
