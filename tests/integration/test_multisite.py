"""Two call-centre sites and a central cluster on one machine, MirrorMaker 2
across a WAN the test cuts and degrades (issue 5).

Topology (tests/integration/multisite.py, started once for the module):
three single-node Kafka brokers (tallinn, moscow, central); per site amisim
--simulate -> callbus-agent -> site Kafka (LAN listener) and a
callbus-gateway on the LAN; each site broker also has a WAN listener
advertised at a Toxiproxy proxy, and MirrorMaker 2 (dedicated mode,
compose/mm2.properties + short test intervals, exactly-once) at the centre
reaches the sites only through those proxies: site events go up
(ami, calls, operators, results, status, state.*), central commands go down. The
reference CRM (tools/crm/crm.py) watches the central topics.

Scenarios, in order, on the same topology:
1. steady traffic: every site event reaches the centre (same id, payload and
   partition), per-key order kept, the CRM's call table equals the site's;
   each site's live state topics are at the centre, compacted, with the
   site's current records (tombstones included);
2. a WAN cut of MULTISITE_CUT_SECONDS (120) under traffic: nothing crosses
   (central end offsets frozen, the proxy refuses connections), operators
   at the cut site still work through their gateway, site commands still
   run; after the link returns everything arrives in order, and commands
   sent centrally during the cut come back `expired`, never executed;
3. 200 ms RTT with a slow, lossy link (latency+jitter, bandwidth cap,
   slicer, reset_peer on a share of connections) for MULTISITE_DEGRADED_SECONDS
   (60) of traffic: everything still arrives, a central command still runs.

Each test prints its figures (events at the site, received centrally,
duplicates dropped, order violations, commands expired, catch-up seconds).
The module takes about 4.5 minutes on 2 cores with the defaults (MM2 and
three brokers start in ~30 s; the cut is 120 s, the degraded traffic 60 s).
"""

import json
import os
import subprocess
import sys
import time

import pytest

from callbus_harness import GwClient, by_command, operator_token
from conftest import mm2_errors, produce, wait_until
from multisite import (ROOT, STATE_KINDS, STATE_TOPIC_CONFIG, UP_KINDS, CentralView, Topology, end_offsets,
                       kafka_reachable, kafka_rtt_ms, latest_records, port_accepts, read_upto,
                       site_order_violations, wait_caught_up)

sys.path.insert(0, str(ROOT / "tools" / "crm"))
from crm import command_event  # noqa: E402  (the CRM's own command builder)

CUT_SECONDS = float(os.environ.get("MULTISITE_CUT_SECONDS", "120"))
DEGRADED_SECONDS = float(os.environ.get("MULTISITE_DEGRADED_SECONDS", "60"))
CRM = ROOT / "tools" / "crm" / "crm.py"
FINAL = {"succeeded", "failed", "rejected", "expired", "duplicate"}


@pytest.fixture(scope="module")
def say(request):
    """Figures go to the terminal even when pytest captures output."""
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def out(msg):
        if capman is None:
            print(msg)
            return
        with capman.global_and_fixture_disabled():
            print(msg, flush=True)
    return out


@pytest.fixture(scope="module")
def topo(tmp_path_factory, say):
    t = Topology(tmp_path_factory.mktemp("multisite"), rate=0.5, operators=6, talk="3-8", log=say)
    try:
        t.start()
        t.crm_summary = t.root / "crm-summary.json"
        t.crm = t.procs.start([sys.executable, CRM, "-b", t.central_bootstrap, "watch",
                               "--group", "crm-test", "--summary", t.crm_summary,
                               "--interval", "0.5", "--metadata-refresh", "2", "--quiet"],
                              name="crm")
        t.view = CentralView(t.central_bootstrap,
                             [s.topic(k) for s in t.sites.values() for k in UP_KINDS])
        yield t
    finally:
        if getattr(t, "view", None):
            t.view.close()
        t.stop()


@pytest.fixture(autouse=True)
def _logs_on_failure(request, topo):
    request.node._callbus_procs = topo.procs  # conftest shows the log tails on failure


def site_snapshot(topo, s):
    """Every event at the site up to now, and the marks it was read to."""
    marks = end_offsets(s.lan, [s.topic(k) for k in UP_KINDS])
    return marks, read_upto(s.lan, marks)


def check_centre_matches(topo, s, events, what):
    """Every site event is at the centre: same payload, same partition; per-key
    order holds at both ends. Returns the figures."""
    v = topo.view
    for e in events:
        c = v.ids[e["id"]]
        assert c["_topic"] == e["_topic"] and c["_partition"] == e["_partition"], (what, e["id"])
        assert {k: x for k, x in c.items() if not k.startswith("_")} == \
            {k: x for k, x in e.items() if not k.startswith("_")}, (what, e["id"])
    assert site_order_violations(events) == 0
    assert v.order_violations == [], v.order_violations[:5]
    # Read after the site snapshot while traffic goes on, so it may be larger.
    central = sum(1 for i in v.ids if i.startswith(f"{s.name}:"))
    return {"site_events": len(events), "central_events_by_now": central}


def crm_summary(topo):
    try:
        return json.loads(topo.crm_summary.read_text())
    except (OSError, ValueError):
        return None


def site_calls(events):
    calls = {}
    for e in events:
        if e["_topic"].endswith(".calls"):
            calls.setdefault(e["subject"], []).append(e["type"])
    return calls


def wait_crm_has(topo, s, events, timeout=120):
    """The CRM's table holds every call of `events` with the same event types
    in the same order (it may already know later events of open calls)."""
    want = site_calls(events)

    def ok():
        sm = crm_summary(topo)
        if not sm or s.name not in sm["sites"]:
            return None
        have = sm["sites"][s.name]["calls"]
        if all(c in have and have[c]["types"][:len(t)] == t for c, t in want.items()):
            return sm
        return None
    sm = wait_until(ok, timeout=timeout, interval=0.5, what=f"the CRM to hold {s.name}'s calls")
    st = sm["sites"][s.name]
    assert st["order_violations"] == 0
    return st, len(want)


def results_at_centre(topo, s, cid):
    topo.view.poll(0.5)
    return [e["data"]["status"] for e in topo.view.ids.values()
            if e["_topic"] == s.topic("results") and e["data"].get("command_id") == cid]


def executed(s, cid):
    """How often amisim ran command cid. amisim rewrites its stats file every
    second (atomically): a missing file is a failure, never a zero."""
    stats = json.loads(s.stats_file.read_text())
    return by_command(stats).get(cid, {}).get("count", 0)


def crm_send(topo, site, ctype, *fields, expires_in=60, wait=0):
    r = subprocess.run([sys.executable, CRM, "-b", topo.central_bootstrap, "send", "--site", site,
                        "--expires-in", str(expires_in), "--wait", str(wait), ctype, *fields],
                       capture_output=True, text=True, timeout=wait + 60)
    assert r.returncode in (0, 3, 4) and r.stdout, r.stderr
    lines = r.stdout.splitlines()
    return lines[0], [json.loads(x) for x in lines[1:]], r.returncode


def local_command(s, ctype, data, expires_in=60):
    """A command produced straight to the site's topic on the LAN."""
    cid = f"{s.name}:site-ops:{int(time.time())}:{time.monotonic_ns() % 10**9}"
    ev = command_event(ctype, data, s.name, expires_in, cid=cid, sender="test:site-ops")
    produce(s.lan, s.topic("commands"), [(ev["subject"], json.dumps(ev))])
    return ev["id"]


def figures(say, title, rows):
    say(f"multisite: {title}")
    for site, f in rows.items():
        say(f"multisite:   {site}: " + ", ".join(f"{k} {v}" for k, v in f.items()))


# ---------------------------------------------------------------- scenarios

def test_steady_traffic_reaches_the_centre_in_order(topo, say):
    # Enough traffic to mean something: finished calls at both sites.
    for s in topo.sites.values():
        wait_until(lambda: sum(1 for e in read_upto(s.lan, end_offsets(s.lan, [s.topic("calls")]))
                               if e["type"] == "callbus.call.ended") >= 3,
                   timeout=120, interval=2, what=f"finished calls at {s.name}")
    rows = {}
    for s in topo.sites.values():
        marks, events = site_snapshot(topo, s)
        secs = wait_caught_up(topo.view, events, timeout=120)
        f = check_centre_matches(topo, s, events, "steady")
        crm, ncalls = wait_crm_has(topo, s, events)
        assert crm["duplicates"] == 0
        rows[s.name] = dict(f, calls=ncalls, crm_calls=len(crm["calls"]),
                            duplicates_dropped=topo.view.duplicates,
                            order_violations=len(topo.view.order_violations),
                            seconds_to_centre=round(secs, 1))
    figures(say, "steady traffic", rows)
    # MM2's log: the documented checkpoint connector ERROR for each flow,
    # nothing else.
    expected, other = mm2_errors(topo.mm2)
    assert other == [], other[:10]
    assert expected == {f"{s}->central" for s in topo.sites} | {f"central->{s}" for s in topo.sites}, expected


def test_live_state_reaches_the_centre(topo, say):
    """A CRM reading the central copies of a site's state topics to their end
    has the site's present: every key's latest record, the same as at the
    site (or a later one: traffic goes on), and the calls that ended gone."""
    from confluent_kafka.admin import AdminClient, ConfigResource
    rows = {}
    for s in topo.sites.values():
        topics = [s.topic(k) for k in STATE_KINDS]
        site = latest_records(s.lan, topics)
        assert any(t == s.topic("state.queues") for t, _ in site), "no queue figures at the site"

        def caught_up():
            centre = latest_records(topo.central_bootstrap, topics)
            site_now = None
            for key, rec in site.items():
                got = centre.get(key, "missing")
                if rec is None:
                    if got is not None:
                        return None
                elif got is None:
                    # Traffic goes on: a call active when the site was read
                    # may have ended since; its tombstone is later, if the
                    # site says so now.
                    site_now = site_now if site_now is not None else latest_records(s.lan, topics)
                    if site_now.get(key, "missing") is not None:
                        return None
                elif got == "missing" or (got["epoch"], got["seq"]) < (rec["epoch"], rec["seq"]):
                    return None
            return centre
        t0 = time.monotonic()
        centre = wait_until(caught_up, timeout=120, interval=1, what=f"{s.name}'s live state at the centre")
        same = [k for k, r in site.items() if r is not None and centre[k] and centre[k]["id"] == r["id"]]
        for k in same:
            assert centre[k] == site[k], k
        a = AdminClient({"bootstrap.servers": topo.central_bootstrap})
        for t in topics:
            res = ConfigResource(ConfigResource.Type.TOPIC, t)
            cfg = a.describe_configs([res])[res].result(timeout=30)
            for name, value in STATE_TOPIC_CONFIG.items():
                assert cfg[name].value == value, (t, name, cfg[name].value)
        rows[s.name] = dict(keys=len(site), ended_calls=sum(1 for r in site.values() if r is None),
                            same_record=len(same), seconds_to_centre=round(time.monotonic() - t0, 1))
    figures(say, "live state at the centre", rows)


def test_wan_cut_under_traffic(topo, say):
    s = topo.sites["tallinn"]
    other = topo.sites["moscow"]
    up = [s.topic(k) for k in UP_KINDS]
    say(f"multisite: cutting the WAN of {s.name} (Toxiproxy proxy disabled) for {CUT_SECONDS:.0f}s")
    t_cut = time.monotonic()
    topo.cut(s.name)
    # The cut really cuts: nothing accepts at the WAN address, no Kafka client gets through.
    assert not port_accepts(s.proxy_port)
    assert not kafka_reachable(s.wan, timeout=5)
    assert kafka_reachable(s.lan, timeout=10)
    time.sleep(10)  # what MM2 had fetched before the cut is written by now
    central_frozen = end_offsets(topo.central_bootstrap, up)
    site_before = end_offsets(s.lan, up)

    # Commands sent centrally during the cut, expiring long before it ends.
    expiry = max(10.0, min(30.0, CUT_SECONDS / 4))
    central_cmds = [crm_send(topo, s.name, "pause", "operator_id=op106", "queue=support",
                             expires_in=expiry)[0],
                    crm_send(topo, s.name, "originate", "operator_id=op105", "number=5552001",
                             expires_in=expiry)[0]]

    # Operators at the cut site keep working through their gateway.
    op = GwClient(s.url, operator_token(s.site, "op101"))
    try:
        offered = op.recv_until(lambda m: m.get("type") == "update" and m["kind"] == "operator"
                                and (m["state"] or {}).get("offered"),
                                timeout=max(60.0, CUT_SECONDS / 2), what="a call offered to op101")
        op.send({"type": "command", "id": "p1", "command": "pause",
                 "data": {"queue": "support", "reason": "during-cut"}})
        ack = op.recv_until(lambda m: m.get("id") == "p1" and m["type"] in ("command_ack", "error"),
                            what="the gateway's answer", seen=False)
        assert ack["type"] == "command_ack", ack
        gw_cid = ack["command_id"]
        res = op.recv_until(lambda m: m.get("type") == "event"
                            and m["event"]["type"] == "callbus.result"
                            and m["event"]["data"]["command_id"] == gw_cid
                            and m["event"]["data"]["status"] in FINAL, timeout=60,
                            what="the pause result")
        assert res["event"]["data"]["status"] == "succeeded", res
        op.send({"type": "command", "id": "u1", "command": "unpause", "data": {"queue": "support"}})
        assert op.recv_until(lambda m: m.get("id") == "u1", what="unpause ack",
                             seen=False)["type"] == "command_ack"
    finally:
        op.close()
    # amisim writes its stats every second: the result can be there first.
    wait_until(lambda: executed(s, gw_cid) == 1, timeout=30, what="amisim to count the pause")
    # A command produced to the site's own topic (site ops, on the LAN) runs.
    local_cid = local_command(s, "originate", {"operator_id": "op104", "number": "5552002"})
    wait_until(lambda: executed(s, local_cid) == 1, timeout=60, what="the site command to run")

    # Wait out the cut; the centre must not move for this site meanwhile.
    left = CUT_SECONDS - (time.monotonic() - t_cut)
    if left > 0:
        time.sleep(left)
    assert end_offsets(topo.central_bootstrap, up) == central_frozen, "data crossed a cut WAN"
    assert not port_accepts(s.proxy_port)
    site_after = end_offsets(s.lan, up)
    grown = sum(site_after.values()) - sum(site_before.values())
    assert grown > 0, "no traffic at the site during the cut: the test would prove nothing"
    for cid in central_cmds:
        assert executed(s, cid) == 0
    cut_len = time.monotonic() - t_cut

    topo.restore(s.name)
    t_back = time.monotonic()
    say(f"multisite: WAN of {s.name} back after {cut_len:.0f}s "
        f"({grown} events written at the site meanwhile, central offsets unchanged)")
    marks, events = site_snapshot(topo, s)
    wait_caught_up(topo.view, events, timeout=300)
    catch_up = time.monotonic() - t_back
    f = check_centre_matches(topo, s, events, "after the cut")

    # Central commands arrive late: expired, never executed, results at the centre.
    for cid in central_cmds:
        st = wait_until(lambda: FINAL & set(results_at_centre(topo, s, cid)) and
                        results_at_centre(topo, s, cid), timeout=120, interval=1,
                        what=f"the result of {cid} at the centre")
        assert st == ["expired"], (cid, st)
        assert executed(s, cid) == 0
    # The gateway's and the site's commands' results reached the centre too.
    for cid in (gw_cid, local_cid):
        wait_until(lambda: "succeeded" in results_at_centre(topo, s, cid), timeout=60,
                   what=f"the result of {cid} at the centre")
    crm, ncalls = wait_crm_has(topo, s, events)
    assert all(crm["results"].get(cid) == ["expired"] for cid in central_cmds), crm["results"]
    # Exactly-once into the centre (KIP-618, docs/architecture.md): the cut
    # and MM2's reconnects add no duplicates for a read_committed consumer.
    assert topo.view.duplicates == 0 and crm["duplicates"] == 0, \
        (topo.view.duplicates, crm["duplicates"])
    # The other site never stopped.
    omarks, oevents = site_snapshot(topo, other)
    wait_caught_up(topo.view, oevents, timeout=120)
    check_centre_matches(topo, other, oevents, "other site")
    figures(say, f"WAN cut of {s.name} ({cut_len:.0f}s)", {s.name: dict(
        f, events_during_cut=grown, duplicates_dropped=topo.view.duplicates,
        crm_duplicates=crm["duplicates"], order_violations=len(topo.view.order_violations),
        commands_expired=crm["expired"], central_commands_executed=0,
        gateway_command="succeeded", site_command="succeeded",
        catch_up_seconds=round(catch_up, 1))})


def test_degraded_wan_still_delivers(topo, say):
    used = {}
    for name in topo.sites:
        used[name] = topo.degrade(name, latency_ms=100, jitter_ms=10, rate_kbs=256,
                                  slice_bytes=512, reset_toxicity=0.2, reset_after_ms=4000)
    say("multisite: degraded WAN (both sites): " + json.dumps(
        [{k: t[k] for k in ("name", "type", "stream", "toxicity", "attributes")}
         for t in used["moscow"]]))
    s = topo.sites["moscow"]
    (rtt_wan, resets), (rtt_lan, _) = kafka_rtt_ms(s.proxy_port), kafka_rtt_ms(s.lan_port)
    say(f"multisite: Kafka request round trip through the degraded WAN {rtt_wan:.0f} ms "
        f"(LAN {rtt_lan:.1f} ms); {resets} probe connections reset by the lossy link")
    assert rtt_wan >= 180, "the latency toxics are not in the path"
    try:
        t0 = time.monotonic()
        starts = {n: end_offsets(s.lan, [s.topic(k) for k in UP_KINDS]) for n, s in topo.sites.items()}
        cid, results, rc = crm_send(topo, "moscow", "pause", "operator_id=op106", "queue=support",
                                    expires_in=120, wait=120)
        assert [r["status"] for r in results][-1:] == ["succeeded"], results
        wait_until(lambda: executed(topo.sites["moscow"], cid) == 1, timeout=30,
                   what="amisim to count the pause")
        left = DEGRADED_SECONDS - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        rows = {}
        for name, s in topo.sites.items():
            marks, events = site_snapshot(topo, s)
            secs = wait_caught_up(topo.view, events, timeout=300)
            f = check_centre_matches(topo, s, events, "degraded")
            rows[name] = dict(f, events_while_degraded=sum(marks.values()) - sum(starts[name].values()),
                              duplicates_dropped=topo.view.duplicates,
                              order_violations=len(topo.view.order_violations),
                              seconds_to_centre_after_traffic=round(secs, 1))
        rows["moscow"]["central_command_round_trip"] = "succeeded"
        figures(say, f"degraded WAN, {DEGRADED_SECONDS:.0f}s of traffic", rows)
        # Reset connections and slow links: MM2's transactions still add no
        # duplicates at the centre.
        assert topo.view.duplicates == 0, topo.view.duplicates
    finally:
        for name in topo.sites:
            topo.heal(name)


def test_aborted_site_records_never_reach_the_centre(topo, say):
    """A standby agent's fenced leader leaves aborted transactions in the site
    topics. MM2 must copy only what the site committed: its source consumers
    read read_committed (compose/mm2.properties), not the Java client's
    read_uncommitted default. An aborted record, then a committed one in the
    same partition: once the committed one is at the centre, the aborted one
    (earlier in the log) would be too, had MM2 read it."""
    import uuid
    from confluent_kafka import Producer
    s = topo.sites["tallinn"]
    topic, tag = s.topic("status"), uuid.uuid4().hex
    p = Producer({"bootstrap.servers": s.lan, "transactional.id": f"multisite-abort-{tag}"})
    p.init_transactions()
    aborted, committed = f"tallinn:aborted-{tag}", f"tallinn:committed-{tag}"
    p.begin_transaction()
    p.produce(topic, json.dumps({"id": aborted, "type": "callbus.test.aborted"}).encode(),
              key=b"abort-test", partition=0)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, json.dumps({"id": committed, "type": "callbus.test.committed"}).encode(),
              key=b"abort-test", partition=0)
    p.commit_transaction(30)

    def arrived():
        topo.view.poll(1.0)
        return committed in topo.view.ids
    wait_until(arrived, timeout=120, interval=0.5, what="the committed record at the centre")
    assert aborted not in topo.view.ids, "MM2 copied an aborted site transaction to the centre"
    say(f"multisite: committed record at the centre, the aborted one before it not: {committed}")
