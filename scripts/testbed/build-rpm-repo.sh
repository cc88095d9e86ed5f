#!/usr/bin/env bash
# Builds the local RPM repositories the RPM-managed target installs from
# (tests/tests/provision_rpm.rs): small noarch packages of our own made with
# rpmbuild, signed with a test bed GPG key, indexed with createrepo_c. Cached
# as $TESTBED_DIR/rpm-repo-<hash> (hash = this script + the key), symlink
# $TESTBED_DIR/rpm-repo; a no-op when cached. The signing key is generated
# once into $TESTBED_DIR/rpm-gnupg.
#
# Layout (served over HTTP by the tests, or read with file://):
#   RPM-GPG-KEY-testbed        the public key (rpm_key, gpgkey=)
#   RPM-GPG-KEY-other          a second key, in no package (rpm_key absent)
#   main/                      tb-hello 1.0 and 2.0, tb-lib, tb-app (needs
#                              tb-lib), tb-unsigned (not signed)
#   extra/                     tb-extra (the repo tests enable on demand)
#   release/                   tb-system-release (installed in the rootfs:
#                              provides system-release(releasever) = 2023)
#   standins/REPO/             small packages standing in for a build's own
#                              (rpm-standins.list: REPO NAME VERSION [SERVICE|bin:TOOL...]),
#                              built from one spec per REPO
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

GNUPG="$TESTBED_DIR/rpm-gnupg"
KEY_NAME="image-testbed rpm signing <rpm@testbed.invalid>"
OTHER_NAME="image-testbed other key <other@testbed.invalid>"

mkdir -p "$TESTBED_DIR"
exec 8>"$TESTBED_DIR/.build-rpm-repo.lock"
flock 8

# --- signing keys (generated once; their public halves are in the hash) ------
if [ ! -s "$GNUPG/testbed.pub" ] || [ ! -s "$GNUPG/other.pub" ]; then
    log "generating the RPM signing keys in $GNUPG"
    rm -rf "$GNUPG"
    install -d -m 0700 "$GNUPG"
    for n in "$KEY_NAME" "$OTHER_NAME"; do
        gpg --homedir "$GNUPG" --batch --quiet --pinentry-mode loopback --passphrase '' \
            --quick-gen-key "$n" rsa2048 sign never
    done
    gpg --homedir "$GNUPG" --batch --armor --export "$OTHER_NAME" >"$GNUPG/other.pub"
    gpg --homedir "$GNUPG" --batch --armor --export "$KEY_NAME" >"$GNUPG/testbed.pub.tmp"
    mv -f "$GNUPG/testbed.pub.tmp" "$GNUPG/testbed.pub"
    gpgconf --homedir "$GNUPG" --kill gpg-agent 2>/dev/null || true
fi

STANDINS="$(dirname "${BASH_SOURCE[0]}")/rpm-standins.list"
K8S_STANDIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures" && pwd)/k8s-standin.sh"
hash="$(cat "${BASH_SOURCE[0]}" "$STANDINS" "$K8S_STANDIN" "$GNUPG/testbed.pub" "$GNUPG/other.pub" | sha256sum | cut -c1-16)"
REPO="$TESTBED_DIR/rpm-repo-$hash"
link_current() {
    ln -sfn "rpm-repo-$hash" "$TESTBED_DIR/.rpm-repo.link.tmp"
    mv -Tf "$TESTBED_DIR/.rpm-repo.link.tmp" "$TESTBED_DIR/rpm-repo"
}
if [ -d "$REPO" ]; then
    [ "$(readlink "$TESTBED_DIR/rpm-repo" 2>/dev/null)" = "rpm-repo-$hash" ] || link_current
    log "rpm repo up to date: $REPO"
    exit 0
fi

log "building rpm repo $REPO"
start=$(date +%s)
tmp="$TESTBED_DIR/.rpm-repo-$hash.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
top="$tmp/build"
# Reproducible packages: rpmbuild takes the build time from the environment.
export SOURCE_DATE_EPOCH=1700000000
mkdir -p "$top/SPECS" "$tmp/out/main" "$tmp/out/extra" "$tmp/out/release"

# spec NAME VERSION REPO [EXTRA SPEC LINES...]: a noarch package owning
# /usr/share/NAME/version (its version, so a test sees which one is installed).
spec() {
    local name="$1" version="$2" repo="$3"
    shift 3
    local f="$top/SPECS/$name-$version.spec"
    {
        echo "Name: $name"
        echo "Version: $version"
        echo "Release: 1"
        echo "Summary: image-testbed package $name"
        echo "License: MIT"
        echo "BuildArch: noarch"
        for l in "$@"; do echo "$l"; done
        echo "%description"
        echo "A package of the image-builder-rs test bed."
        echo "%install"
        echo "mkdir -p %{buildroot}/usr/share/$name"
        echo "echo $version > %{buildroot}/usr/share/$name/version"
        echo "%files"
        echo "/usr/share/$name"
    } >"$f"
    rpmbuild --quiet -bb --define "_topdir $top" --define "_rpmdir $tmp/out/$repo" \
        --define "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm" \
        --define "_source_date_epoch_from_changelog 0" --define "source_date_epoch 1700000000" \
        --define "use_source_date_epoch_as_buildtime 1" --define "_buildhost testbed" --define "clamp_mtime_to_source_date_epoch 1" \
        --define "_binary_payload w9.gzdio" "$f" >/dev/null
}

spec tb-hello 1.0 main
spec tb-hello 2.0 main
spec tb-lib 1.0 main
spec tb-app 1.0 main "Requires: tb-lib"
spec tb-unsigned 1.0 main
spec tb-extra 1.0 extra
spec tb-system-release 2023.0 release \
    "Provides: system-release" "Provides: system-release(releasever) = 2023"

# standins REPO: one spec whose subpackages are REPO's lines of
# rpm-standins.list (one rpmbuild run per repository, not per package).
standins() {
    local repo="$1" f="$top/SPECS/standins-$1.spec" name ver rel svc s
    local -a lines=()
    mapfile -t lines < <(awk -v r="$repo" '$1 == r { $1 = ""; print }' "$STANDINS")
    {
        echo "Name: tb-standins-$repo"
        echo "Version: 0"
        echo "Release: 1"
        echo "Summary: image-testbed stand-ins"
        echo "License: MIT"
        echo "BuildArch: noarch"
        echo "%description"
        echo "Stand-ins of the image-builder-rs test bed."
        for l in "${lines[@]}"; do
            read -r name ver _ <<<"$l"
            rel=1
            case "$ver" in *-*) rel="${ver#*-}" ver="${ver%%-*}" ;; esac
            echo "%package -n $name"
            echo "Version: $ver"
            echo "Release: $rel"
            echo "Summary: image-testbed stand-in for $name"
            # No "Requires: /bin/sh" for a bin: script (the real ones are Go binaries).
            echo "AutoReq: no"
            echo "%description -n $name"
            echo "An empty stand-in for $name (image-builder-rs test bed)."
        done
        echo "%install"
        echo "mkdir -p %{buildroot}/usr/lib/systemd/system %{buildroot}/usr/bin"
        for l in "${lines[@]}"; do
            read -r name ver svc <<<"$l"
            for s in $svc; do
                case "$s" in
                bin:*)
                    # A stand-in binary answering like the real tool (k8s-standin.sh).
                    echo "cat >%{buildroot}/usr/bin/${s#bin:} <<'BIN'"
                    "$K8S_STANDIN" "${s#bin:}" "${ver%%-*}" "$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
                    echo "BIN"
                    echo "chmod 0755 %{buildroot}/usr/bin/${s#bin:}" ;;
                *)
                    echo "cat >%{buildroot}/usr/lib/systemd/system/$s.service <<'UNIT'"
                    printf '%s\n' '[Unit]' "Description=image-testbed stand-in $s" '[Service]' \
                        'ExecStart=/bin/sleep infinity' '[Install]' 'WantedBy=multi-user.target' UNIT ;;
                esac
            done
        done
        echo "%files"
        for l in "${lines[@]}"; do
            read -r name _ svc <<<"$l"
            echo "%files -n $name"
            for s in $svc; do
                case "$s" in
                bin:*) echo "/usr/bin/${s#bin:}" ;;
                *) echo "/usr/lib/systemd/system/$s.service" ;;
                esac
            done
        done
    } >"$f"
    mkdir -p "$tmp/out/standins/$repo"
    rpmbuild --quiet -bb --define "_topdir $top" --define "_rpmdir $tmp/out/standins/$repo" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "_source_date_epoch_from_changelog 0" --define "source_date_epoch 1700000000" \
        --define "use_source_date_epoch_as_buildtime 1" --define "_buildhost testbed" --define "clamp_mtime_to_source_date_epoch 1" \
        --define "_binary_payload w9.gzdio" "$f" >/dev/null
    rm -f "$tmp/out/standins/$repo"/tb-standins-*.rpm
}
standin_repos="$(awk '!/^#/ && NF { print $1 }' "$STANDINS" | sort -u)"
for r in $standin_repos; do standins "$r"; done

# Sign everything but tb-unsigned, at the key's creation time (the same
# bytes on every rebuild, so the rootfs hash over release/ stays put).
key_time="$(gpg --homedir "$GNUPG" --batch --with-colons --list-keys "$KEY_NAME" 2>/dev/null | awk -F: '$1 == "pub" { print $6; exit }')"
signed=()
for f in "$tmp"/out/*/*.rpm "$tmp"/out/standins/*/*.rpm; do
    case "$f" in */tb-unsigned-*) ;; *) signed+=("$f") ;; esac
done
GPG_TTY="" rpmsign --addsign --define "__gpg $(command -v gpg)" --define "_gpg_path $GNUPG" \
    --define "_gpg_name $KEY_NAME" --define "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --faked-system-time $key_time!" \
    "${signed[@]}" >/dev/null 2>&1 || die "rpmsign failed"

for d in main extra release $(printf 'standins/%s ' $standin_repos); do
    createrepo_c --quiet --no-database "$tmp/out/$d" >/dev/null
done
# No agent left running after setup.
gpgconf --homedir "$GNUPG" --kill gpg-agent 2>/dev/null || true
cp "$GNUPG/testbed.pub" "$tmp/out/RPM-GPG-KEY-testbed"
cp "$GNUPG/other.pub" "$tmp/out/RPM-GPG-KEY-other"
chmod -R a+rX "$tmp/out"
mv -T "$tmp/out" "$REPO"
rm -rf "$tmp"
trap - EXIT
link_current
log "rpm repo built in $(( $(date +%s) - start )) s: $REPO"

for old in "$TESTBED_DIR"/rpm-repo-*; do
    [ -d "$old" ] && [ "$old" != "$REPO" ] || continue
    log "removing old rpm repo $old"
    rm -rf "$old"
done
