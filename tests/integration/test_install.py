"""test_install.py -- `make install` and the systemd units (issue 15).

- A staged install (DESTDIR): every file where it belongs, and the installed
  programs find what they ship with: `callbus check` the installed schemas,
  the gateway the installed operator page (no www_dir set); without either
  the gateway refuses to start and says why.
- `systemd-analyze verify` of the units as `make install PREFIX=...` writes
  them (no warning allowed), the settings the issue asks for, and
  `systemd-analyze security` holding their exposure at "OK".
- The units under a real systemd: PID 1 of a podman container on the host's
  network (tests/systemd/Containerfile), with the staged install copied in,
  the users made by systemd-sysusers, Kafka and amisim on the host. The
  gateway's start returns when it serves the page, as its own user; the
  agent stays "activating" while Asterisk is away and is ready once logged
  in; an agent that hangs (SIGSTOP) is killed by the watchdog and started
  again; a bad configuration fails the start, with no restart; stops are
  clean. Skipped, with the reason, only where podman cannot run.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from callbus_harness import restart_amisim
from conftest import ROOT, build_dir, free_port, wait_until
from podman import debian_base_image, podman, podman_problem, skip_unless_podman

UNITS = {"callbus-agent.service": "agent.conf", "callbus-gateway.service": "gateway.conf"}
PROGRAMS = ("callbus-agent", "callbus-gateway", "callbus")
JWT_SECRET = "0123456789abcdef0123456789abcdef-install"


def make_install(**settings):
    args = ["make", "-s", "--no-print-directory", "install", *(f"{k}={v}" for k, v in settings.items())]
    if build_dir().name == "build-san":
        args.append("SAN=1")
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


def gateway_conf(site, bootstrap, port, extra=""):
    return f"""
site = "{site.id}";
topic_prefix = "{site.prefix}";
kafka = [ "bootstrap.servers={bootstrap}" ];
gateway: {{ listen = "127.0.0.1:{port}"; jwt_secret = "{JWT_SECRET}"; {extra} }};
"""


def unit_settings(text):
    """{key: [values]} of a unit file's assignments."""
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """`make install DESTDIR=...` with the default PREFIX: the DESTDIR."""
    dest = tmp_path_factory.mktemp("install") / "root"
    make_install(DESTDIR=dest)
    return dest


def test_staged_install_puts_everything_in_place(staged):
    prefix = staged / "usr" / "local"
    for p in PROGRAMS:
        assert os.access(prefix / "bin" / p, os.X_OK), p
    share = prefix / "share" / "callbus"
    assert sorted(p.name for p in (share / "www").iterdir()) == sorted(p.name for p in (ROOT / "gateway" / "www").iterdir())
    want = sorted(p.name for p in (ROOT / "schemas").iterdir() if p.suffix in (".json", ".yaml"))
    assert sorted(p.name for p in (share / "schemas").iterdir()) == want
    for example in ("agent/agent.conf.example", "gateway/gateway.conf.example"):
        assert (staged / "etc" / "callbus" / os.path.basename(example)).read_text() == (ROOT / example).read_text()
    assert stat.S_IMODE((staged / "var" / "lib" / "callbus").stat().st_mode) == 0o750
    for unit, conf in UNITS.items():
        text = (prefix / "lib" / "systemd" / "system" / unit).read_text()
        assert "@bindir@" not in text and "@sysconfdir@" not in text
        program = unit.removesuffix(".service")
        assert f"\nExecStart=/usr/local/bin/{program} -c /etc/callbus/{conf}\n" in text
    assert "u callbus-agent" in (prefix / "lib" / "sysusers.d" / "callbus.conf").read_text()


def test_installed_cli_finds_the_installed_schemas(staged):
    prefix = staged / "usr" / "local"
    env = {k: v for k, v in os.environ.items() if k != "CALLBUS_SCHEMAS"}
    r = subprocess.run([prefix / "bin" / "callbus", "check", "--file", "/dev/null"], env=env, cwd="/",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"(schemas {prefix}/share/callbus/schemas, " in r.stdout, r.stdout


def test_installed_gateway_serves_the_installed_page(staged, site, kafka_bootstrap, procs, tmp_path):
    prefix = staged / "usr" / "local"
    index = prefix / "share" / "callbus" / "www" / "index.html"
    marker = f"<!-- installed copy {uuid.uuid4().hex} -->"
    index.write_text(index.read_text() + marker)
    port = free_port()
    conf = tmp_path / "gateway.conf"
    conf.write_text(gateway_conf(site, kafka_bootstrap, port))
    procs.start([prefix / "bin" / "callbus-gateway", "-c", conf], name="gateway", cwd="/",
                wait_for=rf"listening on .*www {prefix}/share/callbus/www\)", timeout=60)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    assert marker in body

    # a gateway copied where no page is: it says so and does not start
    lone = tmp_path / "elsewhere" / "bin"
    lone.mkdir(parents=True)
    shutil.copy(prefix / "bin" / "callbus-gateway", lone)
    r = subprocess.run([lone / "callbus-gateway", "-c", conf], cwd="/", capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"no operator page: {tmp_path}/elsewhere/share/callbus/www is missing" in r.stderr, r.stderr


def test_units_verify_and_carry_what_production_needs(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze is missing (tools/setup.sh deps installs systemd)", pytrace=False)
    make_install(PREFIX=tmp_path / "usr", SYSCONFDIR=tmp_path / "etc", LOCALSTATEDIR=tmp_path / "var")
    units = [tmp_path / "usr" / "lib" / "systemd" / "system" / u for u in UNITS]
    r = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
    for path in units:
        s = unit_settings(path.read_text())
        program = path.stem
        assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
        assert s["User"] == [program] and s["Group"] == [program]
        assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
        assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["2"]
        assert int(s["WatchdogSec"][0]) >= 10
        assert s["ExecStart"] == [f"{tmp_path}/usr/bin/{program} -c {tmp_path}/etc/callbus/{UNITS[path.name]}"]
        # exposure 2.0 at most ("OK"): the sandbox stays as tight as it is
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    gw = unit_settings(units[1].read_text())
    # gateway.max_connections' default + 256, with room to raise it
    assert int(gw["LimitNOFILE"][0]) >= 20000 + 256


# ---------------------------------------------------------------- under systemd

def systemd_image(staged):
    """Debian 12 with systemd and the installed programs' runtime packages;
    built once per package list."""
    sys.path.insert(0, str(ROOT / "tests" / "compose"))
    from debian_packages import PackageInfo

    info = PackageInfo(ROOT)
    pkgs = set(info.runtime_plugins())
    for p in PROGRAMS:
        for soname, pkg in info.runtime_packages(staged / "usr" / "local" / "bin" / p):
            assert pkg, f"{p}: no Debian package has {soname}"
            pkgs.add(pkg)
    containerfile = ROOT / "tests" / "systemd" / "Containerfile"
    packages = " ".join(sorted(pkgs))
    tag = hashlib.sha1((containerfile.read_text() + packages).encode()).hexdigest()[:12]
    image = f"localhost/callbus-systemd-test:{tag}"
    if podman("image", "exists", image, check=False).returncode != 0:
        debian_base_image()
        podman("build", "--network", "host", "--pull=never", "-t", image, "--build-arg", f"PACKAGES={packages}",
               "-f", containerfile, containerfile.parent, timeout=1200)
    return image


class SystemdHost:
    """A container whose PID 1 is systemd, on the host's network."""

    def __init__(self, name, tmp):
        self.name = name
        self.tmp = tmp

    def sh(self, *args, check=True, timeout=60):
        return podman("exec", self.name, *args, check=check, timeout=timeout)

    def put(self, text, path):
        local = self.tmp / f"put-{uuid.uuid4().hex}"
        local.write_text(text)
        podman("cp", local, f"{self.name}:{path}")

    def show(self, unit, *props):
        r = self.sh("systemctl", "show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def journal(self, unit):
        return self.sh("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout


# The watchdog test's own timings: a hang is noticed in 2 s, not 30, and a
# stopped process (which cannot dump core) is killed 2 s after SIGABRT.
WATCHDOG_DROPIN = """[Service]
WatchdogSec=2
TimeoutAbortSec=2
LimitCORE=0
RestartSec=1
"""


@pytest.fixture(scope="module")
def systemd_host(staged, tmp_path_factory):
    skip_unless_podman("test_install (under systemd)", podman_problem())
    tmp = tmp_path_factory.mktemp("systemd-host")
    image = systemd_image(staged)
    name = f"callbus-systemd-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--systemd=always", "--network", "host", "--name", name, image)
    host = SystemdHost(name, tmp)
    try:
        wait_until(lambda: host.sh("systemctl", "is-system-running", check=False).stdout.strip()
                   in ("running", "degraded"), timeout=60, what="systemd in the container to boot")
        podman("cp", f"{staged}/.", f"{name}:/")
        host.sh("systemd-sysusers")
        host.sh("mkdir", "-p", "/etc/systemd/system/callbus-agent.service.d")
        host.put(WATCHDOG_DROPIN, "/etc/systemd/system/callbus-agent.service.d/test.conf")
        host.sh("systemctl", "daemon-reload")
        yield host
    finally:
        for unit in UNITS:
            r = podman("exec", name, "journalctl", "-u", unit, "--no-pager", check=False)
            (tmp / f"{unit}.journal").write_text(r.stdout + r.stderr)
        podman("rm", "-f", "-t", "5", name, check=False)


def test_gateway_unit_is_ready_when_it_serves(systemd_host, site, kafka_bootstrap):
    port = free_port()
    systemd_host.put(gateway_conf(site, kafka_bootstrap, port), "/etc/callbus/gateway.conf")
    # Type=notify: returns once the gateway said READY=1
    systemd_host.sh("systemctl", "start", "callbus-gateway", timeout=240)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
    assert "<html" in body.lower()
    st = systemd_host.show("callbus-gateway", "ActiveState", "StatusText", "MainPID", "LimitNOFILE")
    assert st["ActiveState"] == "active" and st["StatusText"] == f"listening on port {port}", st
    assert st["LimitNOFILE"] == "65536"
    owner = systemd_host.sh("stat", "-c", "%U", f"/proc/{st['MainPID']}").stdout.strip()
    assert owner == "callbus-gateway"
    systemd_host.sh("systemctl", "stop", "callbus-gateway")
    st = systemd_host.show("callbus-gateway", "ActiveState", "Result", "ExecMainStatus")
    assert st == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, st
    assert "www /usr/local/share/callbus/www" in systemd_host.journal("callbus-gateway")


def test_agent_unit_is_ready_once_logged_in_and_watched(systemd_host, site, kafka_bootstrap, procs):
    ami_port = free_port()
    systemd_host.put(f"""
site = "{site.id}";
topic_prefix = "{site.prefix}";
kafka = [ "bootstrap.servers={kafka_bootstrap}" ];
agent: {{ ami: {{ host = "127.0.0.1"; port = {ami_port}; username = "callbus"; secret = "callbus";
                  reconnect_min_ms = 100; reconnect_max_ms = 500; }}; }};
""", "/etc/callbus/agent.conf")
    systemd_host.sh("systemctl", "start", "--no-block", "callbus-agent")
    unit = "callbus-agent"
    wait_until(lambda: systemd_host.show(unit, "StatusText")["StatusText"].startswith("connecting to AMI"),
               timeout=30, what="the agent to run")
    time.sleep(2)   # Asterisk away: not ready, however long
    assert systemd_host.show(unit, "ActiveState")["ActiveState"] == "activating"

    restart_amisim(procs, ami_port)
    wait_until(lambda: systemd_host.show(unit, "ActiveState")["ActiveState"] == "active", timeout=30,
               what="the agent's READY=1")
    assert systemd_host.show(unit, "StatusText")["StatusText"].startswith(f"AMI up (127.0.0.1:{ami_port}, ")
    log = systemd_host.journal(unit)
    assert log.index("ami: logged in") < log.index("Started callbus-agent.service")
    assert systemd_host.sh("stat", "-c", "%U %a", "/var/lib/callbus").stdout.split() == ["callbus-agent", "750"]

    # its pings keep it alive past the watchdog's 2 s ...
    pid = systemd_host.show(unit, "MainPID")["MainPID"]
    time.sleep(4)
    assert systemd_host.show(unit, "MainPID", "NRestarts") == {"MainPID": pid, "NRestarts": "0"}
    # ... a hung agent pings no more: systemd kills it and starts it again
    systemd_host.sh("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", unit)

    def restarted():
        st = systemd_host.show(unit, "ActiveState", "MainPID", "NRestarts")
        return st["ActiveState"] == "active" and st["MainPID"] not in (pid, "0") and st["NRestarts"] == "1"
    wait_until(restarted, timeout=30, what="the watchdog's restart")
    assert "Watchdog timeout" in systemd_host.journal(unit)

    systemd_host.sh("systemctl", "stop", unit)
    st = systemd_host.show(unit, "Result", "ExecMainStatus")
    assert st == {"Result": "success", "ExecMainStatus": "0"}, st
    assert "stopping: logging off and flushing Kafka" in systemd_host.journal(unit)


def test_bad_configuration_fails_the_start_without_restarts(systemd_host, site, kafka_bootstrap):
    systemd_host.put(gateway_conf(site, kafka_bootstrap, 8080, extra="idle_timeout = \"soon\";"),
                     "/etc/callbus/gateway.conf")
    r = systemd_host.sh("systemctl", "start", "callbus-gateway", check=False)
    assert r.returncode != 0
    time.sleep(3)   # RestartSec=2 would have started it again by now
    st = systemd_host.show("callbus-gateway", "ActiveState", "Result", "NRestarts")
    assert st == {"ActiveState": "failed", "Result": "exit-code", "NRestarts": "0"}, st
    assert "gateway.idle_timeout" in systemd_host.journal("callbus-gateway")
