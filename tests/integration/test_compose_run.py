"""test_compose_run.py -- compose/ for real: two sites and the centre as
containers, built here, started by podman-compose, driven and checked
(issue 17). test_compose.py proves the files consistent; this runs them.

The module fixture:
1. builds the images from this repository with podman: the Debian 12 base
   (compose/podman/debian-image.sh, mmdebstrap, when podman lacks it), then
   each image compose.yaml builds, once per image (callbus:local and
   callbus-crm:local from compose/Dockerfile, callbus-kafka:4.3.1 from
   compose/kafka with the pinned jars of tests/kafka/kafka.sh);
2. runs compose/compose.yaml with the override tests/compose/hostnet.py
   writes: network_mode: host, each listener its own loopback port, amisim
   in place of each site's Asterisk, random secrets as files, MirrorMaker's
   and the CRM's intervals shortened as in test_multisite.py, the JVMs on
   the quick JIT only;
3. starts the three brokers first and waits for their health checks, then
   the rest (podman < 4.6 cannot wait for `condition: service_healthy`,
   so podman-compose does not: the test does what Docker Compose would),
   then waits for every agent's /health, the gateways' pages and
   MirrorMaker's topics at the centre;
4. always tears the project down (containers, volumes), also on failure,
   after saving every container's log in the test's directory.

The tests, in order, on that deployment:
- calls made through both amisims reach the centre, and the reference CRM
  consumer (tools/crm/crm.py, the crm service) has every one of them;
- a command sent from the centre (crm.py send in the crm container) runs at
  its site and its results come back; the site's gateway accepts a token
  minted in the crm container;
- tallinn's Kafka container stopped while calls go on, then started again:
  nothing is lost (every call at the centre and in the CRM, the ami topic
  without gaps, nothing dropped by the agent).

Skipped, with the reason printed, only where podman cannot run. With warm
image caches the module takes about 3 minutes on 2 cores; building the
images from nothing adds about 3 more.
"""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from callbus_harness import GwClient, metrics
from conftest import ROOT, build_dir, consume_all, wait_until
from multisite import MM2_TEST_OVERRIDES, topic_exists
from podman import debian_base_image, podman, podman_env, podman_problem, skip_unless_podman

sys.path.insert(0, str(ROOT / "tests" / "compose"))
import checks  # noqa: E402
import composecheck  # noqa: E402
from hostnet import HostNet  # noqa: E402

COMPOSE = ROOT / "compose"
PROJECT = "callbus-test"
SITES = ("tallinn", "moscow")
UP_KINDS = ("ami", "calls", "operators", "results", "status")
CALLS = 8           # inbound calls per site and round
CRM_SUMMARY = "/var/lib/callbus/crm-summary.json"
# Four JVMs start at once on two cores: only the quick JIT, which a run of
# minutes does not miss (brokers and MirrorMaker start in about half the time).
KAFKA_TEST_OPTS = "-XX:TieredStopAtLevel=1"


@pytest.fixture(scope="module")
def say(request):
    """Figures go to the terminal even when pytest captures output."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def out(msg):
        if capman is None:
            print(msg, flush=True)
            return
        with capman.global_and_fixture_disabled():
            print(msg, flush=True)
    return out


def why_podman_cannot_run():
    """None where podman and podman-compose can run here, else the reason."""
    try:
        import podman_compose  # noqa: F401
    except ImportError:
        return "podman-compose is not installed for this Python (tools/setup.sh deps)"
    return podman_problem()


def build_images(project, say):
    """Every image a service builds, once each, in the order that lets the
    later targets of a Dockerfile reuse the earlier ones' layers."""
    t0 = time.monotonic()
    made = debian_base_image()
    if made:
        say(f"compose-run: {made}")
    builds = {}
    for name, svc in sorted(project["services"].items()):
        if svc.get("build"):
            builds.setdefault(svc["image"], svc["build"])
    for image, b in sorted(builds.items(), key=lambda ib: (ib[1]["context"], ib[1].get("target") != "runtime")):
        args = ["build", "--network", "host", "--pull=never", "-t", image]
        if b.get("dockerfile"):
            args += ["-f", str(Path(b["context"]) / b["dockerfile"])]
        if b.get("target"):
            args += ["--target", b["target"]]
        for k, v in (b.get("additional_contexts") or {}).items():
            args += ["--build-context", f"{k}={v}"]
        t = time.monotonic()
        r = podman(*args, b["context"], timeout=1800, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        say(f"compose-run: built {image} in {time.monotonic() - t:.0f} s")
    say(f"compose-run: images ready in {time.monotonic() - t0:.0f} s")


class Deployment:
    """The compose project: podman-compose with the override, the
    containers, the addresses they listen on here."""

    def __init__(self, root, say):
        self.root = Path(root)
        self.say = say
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        libs = subprocess.run([str(ROOT / "tests/kafka/kafka.sh"), "libs"], capture_output=True, text=True,
                              check=True).stdout.strip()
        subprocess.run([str(ROOT / "tests/kafka/kafka.sh"), "fetch"], check=True, capture_output=True)
        # compose reads the jars' directory from CALLBUS_KAFKA_LIBS; compose-go
        # only from env files
        self.env_file = self.root / "test.env"
        self.env_file.write_text(f"CALLBUS_KAFKA_LIBS={libs}\n")
        self.env = dict(podman_env(), CALLBUS_KAFKA_LIBS=libs)
        binary = composecheck.build(build_dir() / "tests" / "composecheck")
        project, err = composecheck.load(binary, COMPOSE / "compose.yaml",
                                         [COMPOSE / ".env.example", self.env_file])
        assert err is None, err
        self.project = project
        self.model = checks.Deployment(project, COMPOSE, ROOT, build_dir())
        self.hostnet = HostNet(self.model, self.root / "hostnet", mm2_settings=MM2_TEST_OVERRIDES,
                               crm_args=["--summary", CRM_SUMMARY, "--interval", "1", "--metadata-refresh", "2"],
                               kafka_env={"KAFKA_OPTS": KAFKA_TEST_OPTS})
        self.override = self.hostnet.write()
        self.addr = self.hostnet.addresses()
        self.secrets = {p.name: p.read_text() for p in (self.root / "hostnet" / "secrets").iterdir()}

    def compose(self, *args, timeout=600, check=True):
        cmd = [sys.executable, "-m", "podman_compose", "-p", PROJECT, "-f", COMPOSE / "compose.yaml",
               "-f", self.override, *args]
        with open(self.logs / "podman-compose.log", "a") as log:
            log.write(f"$ {' '.join(map(str, cmd))}\n")
            log.flush()
            r = subprocess.run(list(map(str, cmd)), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                               timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(map(str, args))}: exit {r.returncode} "
                               f"(see {self.logs / 'podman-compose.log'})")
        return r.returncode

    def container(self, svc):
        return f"{PROJECT}_{svc}_1"

    def healthy(self, svc):
        return podman("healthcheck", "run", self.container(svc), check=False).returncode == 0

    def exec(self, svc, *args, timeout=120):
        return podman("exec", self.container(svc), *args, timeout=timeout, check=False)

    def bootstrap(self, kafka, listener):
        return self.addr[kafka][listener]

    def site_bootstrap(self, site):
        return self.bootstrap(f"{site}-kafka", "LAN")

    @property
    def central(self):
        return self.bootstrap("central-kafka", "HOST")

    def http_port(self, svc):
        return int(self.addr[svc]["http"].rsplit(":", 1)[1])

    def ami_port(self, site):
        return int(self.addr[f"{site}-asterisk"]["ami"].rsplit(":", 1)[1])

    def wait_for(self, svc, predicate, what, timeout=120):
        """wait_until, failing with the service's last log lines: CI keeps
        only the test's output, not the logs save_logs writes."""
        try:
            wait_until(predicate, timeout=timeout, interval=1, what=f"{svc} {what}")
        except TimeoutError as e:
            r = podman("logs", "--tail", "40", self.container(svc), check=False)
            state = podman("inspect", "--format", "{{.State.Status}} exit {{.State.ExitCode}}",
                           self.container(svc), check=False)
            raise TimeoutError(f"{e}; container {state.stdout.strip() or state.stderr.strip()}; "
                               f"its last log lines:\n{r.stdout}{r.stderr}") from None

    def save_logs(self):
        for svc in self.project["services"]:
            r = podman("logs", self.container(svc), check=False)
            (self.logs / f"{svc}.log").write_text(r.stdout + r.stderr)

    def crm_summary(self):
        r = self.exec("crm", "cat", CRM_SUMMARY)
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def dep(tmp_path_factory, say):
    skip_unless_podman("compose-run", why_podman_cannot_run(), say)
    t0 = time.monotonic()
    d = Deployment(tmp_path_factory.mktemp("compose-run"), say)
    build_images(d.project, say)
    d.compose("down", "-v", "-t", "5", check=False)   # a project left by a killed run
    try:
        t1 = time.monotonic()
        brokers = d.model.kafka_services()
        d.compose("up", "-d", "--no-build", *brokers)
        wait_until(lambda: all(d.healthy(b) for b in brokers), timeout=240, interval=2,
                   what=f"the brokers' health checks ({', '.join(brokers)})")
        say(f"compose-run: brokers healthy in {time.monotonic() - t1:.0f} s")
        d.compose("up", "-d", "--no-build")
        for site in SITES:
            d.wait_for(f"{site}-agent", lambda: http_ok(f"http://{d.addr[f'{site}-agent']['http']}/health"),
                       what="/health")
            d.wait_for(f"{site}-gateway", lambda: http_ok(f"http://{d.addr[f'{site}-gateway']['http']}/"),
                       what="operator page")
        want = [f"callbus.{s}.{k}" for s in SITES for k in UP_KINDS]
        wait_until(lambda: all(topic_exists(d.central, t) for t in want), timeout=240, interval=2,
                   what="MirrorMaker to create the sites' topics at the centre")
        wait_until(d.crm_summary, timeout=60, interval=1, what="the CRM's summary")
        say(f"compose-run: {len(d.project['services'])} services up and healthy in "
            f"{time.monotonic() - t1:.0f} s ({time.monotonic() - t0:.0f} s with the images); "
            f"override {d.override}")
        yield d
    finally:
        d.save_logs()
        t2 = time.monotonic()
        # podman stops them all at once; podman-compose down would one by one
        running = podman("ps", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}",
                         check=False).stdout.split()
        if running:
            podman("stop", "-t", "10", *running, check=False)
        d.compose("down", "-v", "-t", "10", check=False)
        left = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "-q",
                      check=False).stdout.split()
        say(f"compose-run: torn down in {time.monotonic() - t2:.0f} s; logs in {d.logs}")
        assert not left, f"containers left after down: {left}"


# ---------------------------------------------------------------- helpers

def inbound_calls(port, secret, n, patience=40):
    """n customer calls into queue support (DID 800), as Asterisk would take
    them from a trunk; waits until amisim has queued every one."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        msg = f"Action: Login\r\nUsername: callbus\r\nSecret: {secret}\r\nEvents: off\r\n\r\n"
        for i in range(n):
            msg += (f"Action: Originate\r\nActionID: test-{i}\r\nChannel: Local/800@from-trunk\r\n"
                    f"Application: Wait\r\nData: {patience}\r\nCallerID: \"Customer {i}\" <55510{i:02d}>\r\n"
                    "Async: true\r\n\r\n")
        s.sendall(msg.encode())
        got = b""
        deadline = time.monotonic() + 20
        while got.count(b"Response: Success") < n + 1:
            assert b"Response: Error" not in got, got.decode(errors="replace")
            assert time.monotonic() < deadline, f"amisim answered only: {got.decode(errors='replace')}"
            chunk = s.recv(65536)
            assert chunk, "amisim closed the connection"
            got += chunk
        s.sendall(b"Action: Logoff\r\n\r\n")


def events(bootstrap, topic, timeout=30):
    return [json.loads(r.value) | {"_partition": r.partition, "_key": (r.key or b"").decode()}
            for r in consume_all(bootstrap, topic, timeout=timeout, idle=1.5)]


def ended_calls(bootstrap, site):
    return {e["subject"] for e in events(bootstrap, f"callbus.{site}.calls")
            if e["type"] == "callbus.call.ended"}


def wait_calls(bootstrap, site, count, where, timeout=120):
    return wait_until(lambda: (lambda c: c if len(c) >= count else None)(ended_calls(bootstrap, site)),
                      timeout=timeout, interval=2, what=f"{count} ended calls of {site} at {where}")


def crm_calls(dep, site):
    s = dep.crm_summary() or {}
    return s.get("sites", {}).get(site, {})


def assert_centre_has(dep, site, site_calls, timeout=120):
    """The central topic and the CRM have every ended call of the site."""
    central = wait_until(lambda: (lambda c: c if c >= site_calls else None)(ended_calls(dep.central, site)),
                         timeout=timeout, interval=2, what=f"{site}'s calls at the centre")
    assert central == site_calls, f"calls at the centre that the site never had: {central - site_calls}"

    def crm_has_all():
        t = crm_calls(dep, site)
        ended = {c for c, v in (t.get("calls") or {}).items() if v.get("state") == "ended"}
        return t if ended >= site_calls else None
    t = wait_until(crm_has_all, timeout=60, interval=1, what=f"the CRM to have every call of {site}")
    assert t["order_violations"] == 0, t
    return t


# ---------------------------------------------------------------- the tests

def test_calls_of_both_sites_reach_the_crm(dep, say):
    t0 = time.monotonic()
    for site in SITES:
        inbound_calls(dep.ami_port(site), dep.secrets[f"{site}_ami_secret"], CALLS)
    for site in SITES:
        calls = wait_calls(dep.site_bootstrap(site), site, CALLS, "the site")
        assert len(calls) == CALLS, f"{site}: {len(calls)} calls for {CALLS} made"
        t = assert_centre_has(dep, site, calls)
        say(f"compose-run: {site}: {len(calls)} calls at the site, at the centre and in the CRM "
            f"({t['events']} events, {t['duplicates']} duplicates dropped, 0 order violations)")
    say(f"compose-run: calls checked in {time.monotonic() - t0:.0f} s")


def test_command_from_the_centre_runs_at_the_site(dep, say):
    t0 = time.monotonic()
    r = dep.exec("crm", "python3", "/opt/callbus/crm/crm.py", "-b", dep.bootstrap("central-kafka", "CENTRE"),
                 "send", "--site", "tallinn", "--wait", "90", "originate", "operator_id=op101",
                 "number=5552001", timeout=150)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0, f"crm.py send: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    cid = lines[0]
    statuses = [json.loads(line)["status"] for line in lines[1:]]
    assert statuses[-1] == "succeeded", statuses
    # the command really went down to the site, the results really came up
    site_cmds = [e for e in events(dep.site_bootstrap("tallinn"), "callbus.tallinn.commands") if e["id"] == cid]
    assert len(site_cmds) == 1, site_cmds
    at_centre = [e["data"]["status"] for e in events(dep.central, "callbus.tallinn.results")
                 if e["data"].get("command_id") == cid]
    assert at_centre[-1] == "succeeded", at_centre
    wait_until(lambda: crm_calls(dep, "tallinn").get("results", {}).get(cid, [None])[-1] == "succeeded",
               timeout=60, interval=1, what="the CRM to see the command's result")
    say(f"compose-run: originate from the centre: {' -> '.join(statuses)} in {time.monotonic() - t0:.0f} s")
    # the click-to-call is a call of the site too (amisim's 5552xxx hangs up after 8 s)
    wait_calls(dep.site_bootstrap("tallinn"), "tallinn", CALLS + 1, "the site")
    # The site's gateway takes a token the CRM side mints (crm container).
    url = f"http://{dep.addr['tallinn-gateway']['http']}"
    r = dep.exec("crm", "callbus-demo-token", "--url", url, "tallinn", "op101")
    assert r.returncode == 0, r.stderr
    c = GwClient(url, r.stdout.strip().split("#token=", 1)[1])
    assert (c.welcome["type"], c.welcome["site"], c.welcome["operator_id"]) == ("welcome", "tallinn", "op101"), c.welcome
    c.close()


def test_site_kafka_stopped_and_started_loses_nothing(dep, say):
    site = "tallinn"
    agent_http = dep.http_port(f"{site}-agent")
    before = ended_calls(dep.site_bootstrap(site), site)
    t0 = time.monotonic()
    podman("stop", "-t", "30", dep.container(f"{site}-kafka"))
    say(f"compose-run: {site}-kafka stopped in {time.monotonic() - t0:.0f} s")
    # calls go on at the site while its broker is away: the agent keeps them
    inbound_calls(dep.ami_port(site), dep.secrets[f"{site}_ami_secret"], CALLS)
    wait_until(lambda: metrics(agent_http)["callbus_agent_spooled_total"] > 0, timeout=60, interval=1,
               what="the agent to spool while its broker is away")
    time.sleep(5)
    t1 = time.monotonic()
    podman("start", dep.container(f"{site}-kafka"))
    wait_until(lambda: dep.healthy(f"{site}-kafka"), timeout=180, interval=2, what=f"{site}-kafka healthy again")
    say(f"compose-run: {site}-kafka down {t1 - t0:.0f} s, healthy again after {time.monotonic() - t1:.0f} s")

    calls = wait_calls(dep.site_bootstrap(site), site, len(before) + CALLS, "the site", timeout=180)
    assert calls >= before and len(calls) == len(before) + CALLS, (len(before), len(calls))
    wait_until(lambda: metrics(agent_http)["callbus_agent_spool_bytes"] == 0, timeout=60, interval=1,
               what="the agent's spool to drain")
    # The ami topic has every AMI event the agent read (the last calls'
    # trailing events may still be on their way: until the counts meet).
    # At least once: a record in flight when the broker went away may be
    # there twice, with the same id (consumers drop it by id).
    seen = {}

    def ami_complete():
        m = metrics(agent_http)
        ami = events(dep.site_bootstrap(site), f"callbus.{site}.ami", timeout=60)
        unique = list({e["id"]: e for e in ami}.values())
        seen.update(m=m, ami=ami, events=sum(1 for e in unique if e["data"]["kind"] == "event"))
        return (m, ami, unique) if seen["events"] >= m["callbus_agent_ami_events_total"] else None
    try:
        m, ami, unique = wait_until(ami_complete, timeout=60, interval=2, what="the ami topic")
    except TimeoutError:
        pytest.fail(f"the ami topic has {seen['events']} distinct AMI events ({len(seen['ami'])} records), "
                    f"the agent read {seen['m']['callbus_agent_ami_events_total']:.0f}", pytrace=False)
    assert m["callbus_agent_dropped_total"] == 0, m
    # one epoch, every seq from 1, no gap
    seqs = sorted(e["seq"] for e in unique)
    assert seqs == list(range(1, len(seqs) + 1)), "a gap in the site's ami topic"
    assert {e["epoch"] for e in unique} == {ami[0]["epoch"]}
    site_ids = {e["id"] for e in ami}
    wait_until(lambda: site_ids <= {e["id"] for e in events(dep.central, f"callbus.{site}.ami")},
               timeout=120, interval=2, what=f"every ami event of {site} at the centre")
    t = assert_centre_has(dep, site, calls)
    say(f"compose-run: {site} after its broker's restart: {len(calls)} calls and {len(unique)} ami records "
        f"({seen['events']} AMI events, the agent counted {m['callbus_agent_ami_events_total']:.0f}; "
        f"{len(ami) - len(unique)} records twice), all at the centre and in the CRM; spooled "
        f"{m['callbus_agent_spooled_total']:.0f}, dropped 0, CRM duplicates dropped {t['duplicates']}")
