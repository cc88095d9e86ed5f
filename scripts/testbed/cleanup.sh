#!/usr/bin/env bash
# Stops what crashed test runs left behind: systemd-nspawn targets,
# slirp4netns, moto servers, overlay mounts, cgroup dirs and run dirs recorded
# under $TESTBED_DIR/run/<name>/ (see crates/testbed/src/run.rs).
#
# By default only stale run dirs are cleaned: those whose owner process no
# longer holds run/<name>/lock. With --all, running test beds are stopped too.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

all=false
case "${1:-}" in
    --all) all=true ;;
    "") ;;
    *) die "usage: $0 [--all]" ;;
esac

RUN="$TESTBED_DIR/run"
CGROUP_ROOTS=(/sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup)

# kill_cgroup DIR: SIGKILL everything in the cgroup tree, then remove it.
kill_cgroup() {
    local cg="$1" i pid
    [ -d "$cg" ] || return 0
    for i in $(seq 50); do
        [ -e "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
        while read -r pid; do
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        done < <(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        [ -d "$cg" ] || return 0
        sleep 0.1
    done
    log "warning: cannot remove cgroup $cg"
}

# kill_recorded COMM PID: kill PID if it still runs COMM.
kill_recorded() {
    local comm="$1" pid="$2" i
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
    log "killing $comm $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 40); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
}

unmount() {
    local m="$1"
    if mountpoint -q "$m" 2>/dev/null; then
        log "unmounting $m"
        umount "$m" 2>/dev/null || umount -l "$m"
    fi
}

teardown() {
    local dir="$1" line comm pid
    log "cleaning $dir"
    if [ -f "$dir/cgroups" ]; then
        while read -r line; do [ -n "$line" ] && kill_cgroup "$line"; done <"$dir/cgroups"
    fi
    if [ -f "$dir/pids" ]; then
        while read -r comm pid; do [ -n "$pid" ] && kill_recorded "$comm" "$pid"; done <"$dir/pids"
    fi
    if [ -f "$dir/mounts" ]; then
        while read -r line; do [ -n "$line" ] && unmount "$line"; done <"$dir/mounts"
    fi
    rm -rf "$dir"
}

cleaned=0
skipped=0
if [ -d "$RUN" ]; then
    for dir in "$RUN"/* "$RUN"/.new-*; do
        [ -d "$dir" ] || continue
        if ! $all && [ -e "$dir/lock" ]; then
            exec {fd}<"$dir/lock"
            if ! flock -n "$fd"; then
                exec {fd}<&-
                skipped=$((skipped + 1))
                continue
            fi
            teardown "$dir"
            exec {fd}<&-
        elif ! $all && [ "$(basename "$dir")" != "${dir##*/.new-}" ]; then
            # A .new-* dir without lock: being created right now, or abandoned.
            if [ -z "$(find "$dir" -maxdepth 0 -mmin +5)" ]; then continue; fi
            teardown "$dir"
        else
            teardown "$dir"
        fi
        cleaned=$((cleaned + 1))
    done
fi

# Orphans whose run dir is gone: cgroup dirs and overlay mounts.
for root in "${CGROUP_ROOTS[@]}"; do
    [ -d "$root/image-testbed" ] || continue
    for cg in "$root"/image-testbed/*/; do
        cg="${cg%/}"
        [ -d "$cg" ] || continue
        [ -d "$RUN/$(basename "$cg")" ] && continue
        log "removing orphan cgroup $cg"
        kill_cgroup "$cg"
    done
    $all && rmdir "$root/image-testbed" 2>/dev/null || true
done
while read -r _ mp _; do
    case "$mp" in
        "$RUN"/*)
            name="${mp#"$RUN"/}"
            name="${name%%/*}"
            [ -d "$RUN/$name" ] && ! $all && continue
            unmount "$mp"
            ;;
    esac
done < <(awk '{ print $1, $2, $3 }' /proc/mounts)

log "cleaned $cleaned run dir(s), left $skipped in use"
