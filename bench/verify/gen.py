"""Generates a goss file of N checks from a seed for bench/verify/run.sh.

Usage: gen.py --host USER@HOST:PORT --key KEY --seed S [--checks 100]
              [--fail 0.1] --out-goss FILE --out-checks FILE

It reads the target once (one SSH exec: packages, services, kernel
parameters, users, groups, files, listening ports, processes, mounts,
interfaces) and draws checks across every resource type and attribute
image-verify has: package (installed, versions), service (enabled,
running, runlevels), kernel-param, user (exists, uid, gid, groups, home,
shell), group (exists, gid), command (exit-status, stdout, stderr), file
(exists, mode, size, owner, group, uid, gid, filetype, linked-to, md5,
sha256, sha512, contents), port (listening, ip), process (running), mount
(exists, opts, vfs-opts, source, filesystem, usage), interface (exists,
addrs, mtu), http (status, body, headers), dns (resolvable, addrs), addr
(reachable), matching. About `--fail` of the checks are made false on
purpose (a changed expected value, never on a gate property such as
`exists`): both tools must find exactly those.

The checks file is JSON, one entry per check: type, id, property, the
expected value for testinfra and whether the check should pass;
test_goss.py runs it with pytest-testinfra.
"""
import argparse
import json
import random

import paramiko
import yaml

DISCOVER = r"""
echo '##packages'; dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Status}\n'
echo '##unitfiles'; systemctl list-unit-files --type=service --no-legend --no-pager
echo '##units'; systemctl list-units --type=service --all --no-legend --no-pager --plain
echo '##passwd'; getent passwd
echo '##group'; getent group
echo '##idgroups'; getent passwd | cut -d: -f1 | while read -r u; do printf '%s\t%s\n' "$u" "$(id -Gn "$u")"; done
echo '##sysctl'; for k in kernel/ostype kernel/osrelease kernel/pid_max kernel/hostname kernel/threads-max \
  kernel/panic kernel/printk_ratelimit kernel/sysrq kernel/randomize_va_space vm/swappiness vm/overcommit_memory \
  vm/max_map_count vm/dirty_ratio fs/file-max fs/inotify/max_user_watches fs/inotify/max_user_instances \
  fs/pipe-max-size net/core/somaxconn net/ipv4/ip_forward net/ipv4/tcp_syncookies net/ipv4/ip_local_port_range \
  net/ipv4/tcp_keepalive_time net/ipv4/tcp_fin_timeout net/ipv4/conf/all/rp_filter net/ipv6/conf/all/disable_ipv6; do
  [ -r /proc/sys/$k ] && printf '%s\t%s\n' "$(echo $k | tr / .)" "$(cat /proc/sys/$k)"; done
echo '##files'; for f in /etc/passwd /etc/group /etc/hostname /etc/hosts /etc/shells /etc/debian_version /etc/os-release \
  /etc/issue /etc/login.defs /etc/nsswitch.conf /etc/ssh/sshd_config /etc/sudoers /etc/adduser.conf /etc/deluser.conf \
  /etc/host.conf /etc/profile /etc/bash.bashrc /etc/environment /etc/ld.so.conf /etc/mime.types /bin /sbin /lib \
  /etc/mtab /etc/localtime /bin/sh /usr/bin/awk /etc /usr/bin /var/log /tmp /usr/share /dev/null /dev/zero /run; do
  [ -e "$f" ] || continue
  printf '%s\t%s\t%s\n' "$f" "$(stat -c '%a	%s	%U	%G	%u	%g	%F' "$f")" "$(readlink "$f")"
  if [ -f "$f" ] && [ ! -L "$f" ] && [ -r "$f" ]; then
    printf '%s\tsum\t%s\t%s\t%s\n' "$f" "$(md5sum <"$f" | cut -d' ' -f1)" "$(sha256sum <"$f" | cut -d' ' -f1)" "$(sha512sum <"$f" | cut -d' ' -f1)"
    grep -v '^[[:space:]]*$' "$f" | grep -v '[]\\[^$.*+?(){}|/!]' | awk 'length($0) > 8 && length($0) < 60' | head -3 | sed "s|^|$f\tline\t|"
  fi; done
echo '##tcp'; cat /proc/net/tcp /proc/net/tcp6
echo '##comm'; cat /proc/[0-9]*/comm 2>/dev/null | sort -u
echo '##mountinfo'; cat /proc/self/mountinfo
echo '##ifaces'; for n in /sys/class/net/*; do printf '%s\t%s\n' "${n##*/}" "$(cat $n/mtu)"; done
echo '##addrs'; ip -o addr
"""

FILETYPE = {"regular file": "file", "regular empty file": "file", "directory": "directory",
            "symbolic link": "symlink", "character special file": "character-device",
            "block special file": "block-device", "fifo": "pipe", "socket": "socket"}


def discover(host, key):
    user, rest = host.split("@")
    addr, port = rest.rsplit(":", 1)
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(addr, int(port), user, key_filename=key, look_for_keys=False, allow_agent=False)
    _, out, _ = c.exec_command(DISCOVER)
    text = out.read().decode("utf-8", "replace")
    c.close()
    sec, parts = None, {}
    for line in text.splitlines():
        if line.startswith("##"):
            sec = line[2:]
            parts[sec] = []
        elif sec:
            parts[sec].append(line)
    return parts


def facts(p):
    f = {}
    f["packages"] = {}
    for l in p["packages"]:
        name, ver, st = (l.split("\t") + ["", ""])[:3]
        if st == "installed":
            f["packages"][name] = ver
    states = {}
    for l in p["unitfiles"]:
        w = l.split()
        if len(w) >= 2 and w[0].endswith(".service") and "@" not in w[0]:
            states[w[0][:-8]] = w[1]
    active = {}
    for l in p["units"]:
        w = l.split()
        if len(w) >= 4 and w[0].endswith(".service") and "@" not in w[0]:
            active[w[0][:-8]] = w[2] == "active"
    en = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias", "transient")
    f["services"] = {n: (states.get(n, "") in en, active.get(n, False))
                     for n in set(states) | set(active) if states.get(n) in ("enabled", "disabled", "static")}
    f["users"] = {}
    for l in p["passwd"]:
        x = l.split(":")
        f["users"][x[0]] = {"uid": int(x[2]), "gid": int(x[3]), "home": x[5], "shell": x[6]}
    for l in p["idgroups"]:
        u, g = l.split("\t")
        if u in f["users"]:
            f["users"][u]["groups"] = g.split()
    f["groups"] = {l.split(":")[0]: int(l.split(":")[2]) for l in p["group"]}
    f["sysctl"] = dict(l.split("\t", 1) for l in p["sysctl"])
    files = {}
    for l in p["files"]:
        c = l.split("\t")
        if len(c) == 9:
            files[c[0]] = {"mode": c[1].rjust(4, "0"), "size": int(c[2]), "owner": c[3], "group": c[4],
                           "uid": int(c[5]), "gid": int(c[6]), "filetype": FILETYPE.get(c[7], "unknown"),
                           "linked-to": c[8] or None, "lines": []}
        elif len(c) == 5 and c[1] == "sum":
            files[c[0]].update(md5=c[2], sha256=c[3], sha512=c[4])
        elif len(c) == 3 and c[1] == "line":
            files[c[0]]["lines"].append(c[2].strip())
    f["files"] = files
    ports = set()
    for l in p["tcp"]:
        w = l.split()
        if len(w) > 3 and w[3] == "0A":
            a, port = w[1].rsplit(":", 1)
            ports.add((int(port, 16), "tcp6" if len(a) == 32 else "tcp", a))
    f["ports"] = ports
    f["comm"] = sorted(set(p["comm"]))
    mounts = {}
    for l in p["mountinfo"]:
        pre, post = l.split(" - ")
        pre, post = pre.split(), post.split()
        mounts[pre[4]] = {"opts": pre[5].split(","), "filesystem": post[0], "source": post[1],
                          "vfs-opts": post[2].split(",")}
    f["mounts"] = mounts
    f["ifaces"] = {l.split("\t")[0]: int(l.split("\t")[1]) for l in p["ifaces"]}
    addrs = {}
    for l in p["addrs"]:
        w = l.split()
        if len(w) > 3:
            addrs.setdefault(w[1], []).append(w[3])
    f["addrs"] = addrs
    return f


class Gen:
    def __init__(self, rnd, fail):
        self.rnd, self.fail = rnd, fail
        self.goss = {}
        self.checks = []

    def add(self, typ, rid, attrs, gated=None):
        """attrs: [(prop, goss value, testinfra value, may_fail)]."""
        entry = self.goss.setdefault(typ, {}).setdefault(rid, {})
        for prop, gv, tv, may_fail in attrs:
            ok = not (may_fail and self.rnd.random() < self.fail)
            if not ok:
                gv, tv = falsify(gv), falsify(tv)
            entry[prop] = gv
            self.checks.append({"type": typ, "id": rid, "property": prop, "expected": tv, "pass": ok})


def falsify(v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + 1
    if isinstance(v, str):
        return v + "-not"
    if isinstance(v, dict):
        return {k: falsify(x) for k, x in v.items()}
    if isinstance(v, list):
        return [falsify(x) for x in v]
    return v


def generate(f, seed, n, fail):
    rnd = random.Random(seed)
    g = Gen(rnd, fail)
    pick = lambda seq: rnd.choice(sorted(seq))
    used = {t: set() for t in ("package", "service", "kernel-param", "user", "group", "file", "command", "port",
                               "process", "mount", "interface", "http", "dns", "addr", "matching")}

    def fresh(t, pool):
        pool = [x for x in sorted(pool) if x not in used[t]]
        if not pool:
            return None
        x = rnd.choice(pool)
        used[t].add(x)
        return x

    def package():
        name = fresh("package", f["packages"])
        if name is None:
            return
        attrs = [("installed", True, True, False)]
        if rnd.random() < 0.5:
            attrs.append(("versions", {"contain-element": f["packages"][name]}, f["packages"][name], True))
        g.add("package", name, attrs)

    def missing_package():
        name = "no-such-package-%d" % rnd.randrange(10**6)
        g.add("package", name, [("installed", False, False, False)])

    def service():
        name = fresh("service", f["services"])
        if name is None:
            return
        e, r = f["services"][name]
        attrs = [("enabled", e, e, True), ("running", r, r, True)]
        if rnd.random() < 0.2:
            attrs.append(("runlevels", [], [], False))
        rnd.shuffle(attrs)
        g.add("service", name, attrs[: rnd.randint(1, len(attrs))])

    def sysctl():
        k = fresh("kernel-param", f["sysctl"])
        if k is not None:
            g.add("kernel-param", k, [("value", f["sysctl"][k], f["sysctl"][k], True)])

    def user():
        u = fresh("user", f["users"])
        if u is None:
            return
        d = f["users"][u]
        attrs = [("uid", d["uid"], d["uid"], True), ("gid", d["gid"], d["gid"], True),
                 ("home", d["home"], d["home"], True), ("shell", d["shell"], d["shell"], True)]
        if d.get("groups"):
            grp = pick(d["groups"])
            attrs.append(("groups", {"contain-element": grp}, grp, True))
        rnd.shuffle(attrs)
        g.add("user", u, [("exists", True, True, False)] + attrs[: rnd.randint(0, 3)])

    def group():
        name = fresh("group", f["groups"])
        if name is None:
            return
        attrs = [("exists", True, True, False)]
        if rnd.random() < 0.7:
            attrs.append(("gid", f["groups"][name], f["groups"][name], True))
        g.add("group", name, attrs)

    def file_():
        path = fresh("file", f["files"])
        if path is None:
            return
        d = f["files"][path]
        props = ["mode", "size", "owner", "group", "uid", "gid", "filetype"]
        if d["filetype"] == "directory":
            props.remove("size")
        if d["linked-to"]:
            props.append("linked-to")
        if "md5" in d:
            props += ["md5", "sha256", "sha512"]
        if d["lines"]:
            props.append("contents")
        rnd.shuffle(props)
        attrs = [("exists", True, True, False)]
        for p in props[: rnd.randint(1, 4)]:
            if p == "contents":
                attrs.append(("contents", d["lines"][:2], d["lines"][:2], True))
            else:
                attrs.append((p, d[p], d[p], True))
        g.add("file", path, attrs)

    def missing_file():
        g.add("file", "/no/such/file-%d" % rnd.randrange(10**6), [("exists", False, False, False)])

    def command():
        kind = rnd.randrange(6)
        word = "w%d" % rnd.randrange(10**6)
        if kind == 0:
            cmd, out, err, st = "echo %s" % word, [word], None, 0
        elif kind == 1:
            cmd, out, err, st = "echo %s >&2; exit 3" % word, None, [word], 3
        elif kind == 2:
            u = pick(f["users"])
            cmd, out, err, st = "id -u %s" % u, [str(f["users"][u]["uid"])], None, 0
        elif kind == 3:
            p = pick(f["files"])
            cmd, out, err, st = "test -e %s && echo yes-%s" % (p, word), ["yes-" + word], None, 0
        elif kind == 4:
            cmd, out, err, st = "printf '%s\\n%s\\n' a " + word, [word], None, 0
        else:
            k = pick(f["sysctl"])
            cmd, out, err, st = "cat /proc/sys/%s" % k.replace(".", "/"), None, None, 0
        if cmd in used["command"]:
            return
        used["command"].add(cmd)
        attrs = [("exit-status", st, st, True)]
        if out is not None:
            attrs.append(("stdout", out, out, True))
        if err is not None:
            attrs.append(("stderr", err, err, True))
        g.add("command", cmd, attrs)

    def port():
        if not f["ports"]:
            return
        p, proto, _ = pick(f["ports"])
        pid = "%s:%d" % (proto, p)
        if pid in used["port"]:
            return
        used["port"].add(pid)
        ips = sorted({hexip(a) for (pp, pr, a) in f["ports"] if pp == p and pr == proto})
        attrs = [("listening", True, True, False)]
        if rnd.random() < 0.6:
            attrs.append(("ip", {"contain-element": ips[0]}, ips[0], True))
        g.add("port", pid, attrs)

    def closed_port():
        p = rnd.choice([1, 7, 9, 13, 37])
        if "tcp:%d" % p not in used["port"]:
            used["port"].add("tcp:%d" % p)
            g.add("port", "tcp:%d" % p, [("listening", False, False, False)])

    def process():
        stable = ("systemd", "systemd-journal", "systemd-logind", "dbus-daemon", "sshd", "agetty", "python3")
        c = fresh("process", [x for x in f["comm"] if x in stable])
        if c is not None:
            g.add("process", c, [("running", True, True, True)])

    def mount():
        m = fresh("mount", [m for m in f["mounts"] if not m.startswith("/run/host")])
        if m is None:
            return
        d = f["mounts"][m]
        props = ["opts", "vfs-opts", "source", "filesystem"]
        if d["filesystem"] in ("tmpfs", "overlay"):
            props.append("usage")
        rnd.shuffle(props)
        attrs = [("exists", True, True, False)]
        for p in props[: rnd.randint(1, 3)]:
            if p in ("opts", "vfs-opts"):
                attrs.append((p, {"contain-element": d[p][0]}, d[p][0], True))
            elif p == "usage":
                attrs.append(("usage", {"lt": 101}, 101, False))
            else:
                attrs.append((p, d[p], d[p], True))
        g.add("mount", m, attrs)

    def interface():
        i = fresh("interface", f["ifaces"])
        if i is None:
            return
        attrs = [("exists", True, True, False), ("mtu", f["ifaces"][i], f["ifaces"][i], True)]
        if f["addrs"].get(i):
            a = f["addrs"][i][0]
            attrs.append(("addrs", {"contain-element": a}, a, True))
        g.add("interface", i, attrs)

    def http():
        path = fresh("http", ["/hostname", "/shells", "/debian_version", "/host.conf"])
        if path is None:
            return
        url = "http://127.0.0.1:%d%s" % (HTTP_PORT, path)
        attrs = [("status", 200, 200, False)]
        body = f["files"].get("/etc" + path, {}).get("lines")
        if body:
            attrs.append(("body", body[:1], body[:1], True))
        if rnd.random() < 0.5:
            attrs.append(("headers", ["Content-Length"], ["Content-Length"], True))
        g.add("http", url, attrs)

    def dns():
        name = fresh("dns", ["localhost", "ip6-localhost", "no-such-host.invalid"])
        if name is None:
            return
        if name.endswith(".invalid"):
            g.add("dns", name, [("resolvable", False, False, False)])
        else:
            addr = "127.0.0.1" if name == "localhost" else "::1"
            g.add("dns", name, [("resolvable", True, True, False),
                                ("addrs", {"contain-element": addr}, addr, True)])

    def addr():
        target = fresh("addr", ["tcp://127.0.0.1:22", "tcp://127.0.0.1:%d" % HTTP_PORT, "tcp://127.0.0.1:1"])
        if target is not None:
            ok = not target.endswith(":1")
            g.add("addr", target, [("reachable", ok, ok, True)])

    def matching():
        word = "m%d" % rnd.randrange(10**6)
        g.goss.setdefault("matching", {})["match-" + word] = {"content": [word, "x"], "matches": {"contain-element": word}}
        g.checks.append({"type": "matching", "id": "match-" + word, "property": "matches", "expected": word, "pass": True})

    makers = [(package, 8), (missing_package, 1), (service, 4), (sysctl, 6), (user, 5), (group, 4), (file_, 12),
              (missing_file, 1), (command, 10), (port, 2), (closed_port, 1), (process, 3), (mount, 3),
              (interface, 2), (http, 2), (dns, 2), (addr, 2), (matching, 1)]
    # Every type once, then drawn by weight until n checks.
    for m, _ in makers:
        m()
    tries = 0
    while len(g.checks) < n and tries < 10000:
        tries += 1
        rnd.choices([m for m, _ in makers], [w for _, w in makers])[0]()
    # Trim to exactly n: drop trailing checks, and a resource left empty.
    while len(g.checks) > n:
        c = g.checks.pop()
        if c["type"] == "matching":
            del g.goss["matching"][c["id"]]
            continue
        entry = g.goss[c["type"]][c["id"]]
        del entry[c["property"]]
        if not entry:
            del g.goss[c["type"]][c["id"]]
    return g


HTTP_PORT = 18080


def hexip(a):
    if len(a) == 8:
        return ".".join(str(int(a[i:i + 2], 16)) for i in (6, 4, 2, 0))
    import ipaddress
    b = bytes.fromhex(a)
    b = b"".join(b[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--checks", type=int, default=100)
    ap.add_argument("--fail", type=float, default=0.1)
    ap.add_argument("--out-goss", required=True)
    ap.add_argument("--out-checks", required=True)
    a = ap.parse_args()
    g = generate(facts(discover(a.host, a.key)), a.seed, a.checks, a.fail)
    with open(a.out_goss, "w") as fh:
        fh.write("# Generated by bench/verify/gen.py --seed %d --checks %d --fail %s\n" % (a.seed, a.checks, a.fail))
        yaml.safe_dump(g.goss, fh, sort_keys=True, default_flow_style=False, width=1000)
    with open(a.out_checks, "w") as fh:
        json.dump({"http_port": HTTP_PORT, "checks": g.checks}, fh, indent=1)
    fails = sum(1 for c in g.checks if not c["pass"])
    types = sorted({c["type"] for c in g.checks})
    print("%d checks (%d false on purpose) over %d types: %s" % (len(g.checks), fails, len(types), " ".join(types)))


if __name__ == "__main__":
    main()
