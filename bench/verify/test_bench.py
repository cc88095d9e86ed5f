"""The 100 checks of goss-100.yaml with pytest-testinfra (bench/verify/run.sh)."""
import re
import pytest

PACKAGES = ['adduser', 'apt', 'base-files', 'bash', 'coreutils', 'curl', 'dash', 'dbus', 'debconf', 'dpkg', 'e2fsprogs', 'findutils', 'grep', 'gzip', 'hostname', 'iproute2', 'kmod', 'libc6', 'openssh-server', 'sudo']
FILES = [('/etc/passwd', 'file'), ('/etc/group', 'file'), ('/etc/hostname', 'file'), ('/etc/hosts', 'file'), ('/etc/ssh/sshd_config', 'file'), ('/etc/sudoers', 'file'), ('/bin/sh', 'symlink'), ('/etc', 'directory'), ('/usr/bin', 'directory'), ('/var/log', 'directory')]
SERVICES = ['ssh', 'dbus', 'systemd-journald', 'systemd-logind', 'cron-nope']
COMMANDS = [('uname -s', 'Linux'), ('id -u', '1000'), ('hostname', '/./'), ('cat /etc/debian_version', '12'), ('echo hello', 'hello'), ('test -d /run/systemd/system', None), ('ls /', 'etc'), ('whoami', 'builder'), ("printf 'a\\nb\\n'", 'b'), ("sh -c 'exit 0'", None)]
KERNEL = [('kernel.ostype', 'Linux'), ('kernel.pid_max', None), ('net.ipv4.ip_forward', None), ('kernel.hostname', None), ('fs.file-max', None), ('vm.swappiness', None), ('net.core.somaxconn', None), ('kernel.osrelease', None), ('net.ipv4.tcp_syncookies', None), ('fs.inotify.max_user_watches', None)]
USERS = [('root', '/root'), ('builder', '/home/builder'), ('nobody', '/nonexistent')]
GROUPS = [('root', 0), ('sudo', 27)]


@pytest.mark.parametrize("name", PACKAGES)
def test_package(host, name):
    assert host.package(name).is_installed


@pytest.mark.parametrize("path,kind", FILES)
def test_file_exists(host, path, kind):
    assert host.file(path).exists


@pytest.mark.parametrize("path,kind", FILES)
def test_file_owner(host, path, kind):
    assert host.file(path).user == "root"


@pytest.mark.parametrize("path,kind", FILES)
def test_file_type(host, path, kind):
    f = host.file(path)
    assert {"file": f.is_file and not f.is_symlink, "symlink": f.is_symlink, "directory": f.is_directory}[kind]


@pytest.mark.parametrize("name", SERVICES)
def test_service_enabled(host, name):
    assert host.service(name).is_enabled == (name != "cron-nope")


@pytest.mark.parametrize("name", SERVICES)
def test_service_running(host, name):
    assert host.service(name).is_running == (name != "cron-nope")


@pytest.mark.parametrize("cmd,out", COMMANDS)
def test_command_status(host, cmd, out):
    assert host.run(cmd).rc == 0


@pytest.mark.parametrize("cmd,out", COMMANDS)
def test_command_output(host, cmd, out):
    r = host.run(cmd)
    if out is None:
        assert r.stderr == ""
    elif out.startswith("/"):
        assert re.search(out.strip("/"), r.stdout)
    else:
        assert out in r.stdout


@pytest.mark.parametrize("key,value", KERNEL)
def test_kernel_param(host, key, value):
    v = host.run("cat /proc/sys/" + key.replace(".", "/")).stdout.strip()
    assert v == value if value else v != ""


@pytest.mark.parametrize("name,home", USERS)
def test_user_exists(host, name, home):
    assert host.user(name).exists


@pytest.mark.parametrize("name,home", USERS)
def test_user_home(host, name, home):
    assert host.user(name).home == home


@pytest.mark.parametrize("name,gid", GROUPS)
def test_group_exists(host, name, gid):
    assert host.group(name).exists


@pytest.mark.parametrize("name,gid", GROUPS)
def test_group_gid(host, name, gid):
    assert host.group(name).gid == gid
