#!/usr/bin/env bash
# Installs the host packages, the moto venv and the ansible-core venv the
# test bed needs.
# Idempotent and fast (no network) when everything is already there.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_root

PACKAGES=(
    mmdebstrap systemd-container slirp4netns socat openssh-client
    libssl-dev pkg-config python3-venv util-linux curl ca-certificates
    dpkg-dev gnupg rpm createrepo-c
)

missing=()
for p in "${PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [ "$st" = installed ] || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when they are missing or older than a day;
    # if the install still fails (stale lists), update once and retry.
    lists_fresh=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)
    [ -n "$lists_fresh" ] || apt-get update -q
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# Python venv with moto server. Use the distribution's python3 (python3-venv
# is installed above); fall back to whatever python3 is on PATH.
VENV="$TESTBED_DIR/venv"
STAMP="$VENV/.testbed-moto-$MOTO_VERSION"
py=""
for cand in /usr/bin/python3 "$(command -v python3 || true)"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    if "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then py="$cand"; break; fi
done
[ -n "$py" ] || die "no python3 with a working venv module (apt-get install python3-venv)"
if [ ! -e "$STAMP" ] || [ ! -x "$VENV/bin/moto_server" ]; then
    log "creating venv with $py and moto[server]==$MOTO_VERSION"
    # venvs are not relocatable (absolute shebangs), so build in place; the
    # stamp file, written last, marks a complete install.
    mkdir -p "$TESTBED_DIR"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    touch "$STAMP"
fi
# ansible-core, the reference the differential tests compare image-cli with
# (tests/tests/provision_differential.rs), in its own venv. The collections
# some playbooks call (ansible.posix, community.general) are not in
# ansible-core: they are unpacked from the `ansible` community package's wheel
# (Galaxy may be unreachable; PyPI is the one registry we use).
ANSIBLE_CORE_VERSION="2.19.*"
ANSIBLE_VERSION="12.*"
ANSIBLE_COLLECTIONS="ansible.posix community.general"
ANSIBLE_VENV="$TESTBED_DIR/ansible-core-venv"
ANSIBLE_STAMP="$ANSIBLE_VENV/.testbed-ansible-core-2.19-12"
if [ ! -e "$ANSIBLE_STAMP" ] || [ ! -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
    log "creating venv with ansible-core==$ANSIBLE_CORE_VERSION and collections from ansible==$ANSIBLE_VERSION"
    mkdir -p "$TESTBED_DIR"
    rm -rf "$ANSIBLE_VENV"
    "$py" -m venv "$ANSIBLE_VENV"
    "$ANSIBLE_VENV/bin/pip" install -q --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION"
    wheels="$(mktemp -d)"
    "$ANSIBLE_VENV/bin/pip" download -q --disable-pip-version-check --no-deps \
        "ansible==$ANSIBLE_VERSION" -d "$wheels"
    # Into site-packages, where ansible finds collections without settings.
    "$ANSIBLE_VENV/bin/python3" - "$wheels" $ANSIBLE_COLLECTIONS <<'PY'
import glob, sys, sysconfig, zipfile
wheels, names = sys.argv[1], sys.argv[2:]
dest = sysconfig.get_paths()["purelib"]
prefixes = tuple("ansible_collections/%s/" % n.replace(".", "/") for n in names)
(whl,) = glob.glob(wheels + "/ansible-*.whl")
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.startswith(prefixes)]
    if not members:
        sys.exit("no %s in %s" % (names, whl))
    z.extractall(dest, members)
PY
    rm -rf "$wheels"
    touch "$ANSIBLE_STAMP"
fi
log "install ok"
