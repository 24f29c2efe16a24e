#!/usr/bin/env python3
"""callbus reference CRM consumer: what the centre sees.

Consumes the central cluster's callbus.<site>.{calls,operators,results}
topics of every site in one consumer group, keeps a table of calls per site,
drops duplicates by CloudEvent id (counting them), checks per-key order
(epoch, seq must grow per topic and key; violations counted), and sends
commands to a site through the central commands topic.

    crm.py -b HOST:PORT watch [--sites a,b] [--group crm] [--summary FILE]
                              [--interval S] [--duration S] [--quiet]
    crm.py -b HOST:PORT send --site SITE [--expires-in S] [--id ID]
                             [--sender WHO] [--wait S] TYPE key=value... key:=JSON...

watch prints one line per new call state and, on exit (SIGINT, SIGTERM,
--duration), the summary as JSON on stdout; --summary FILE also rewrites it
every --interval seconds. send prints the command id, then with --wait the
results that came back (exit 0 succeeded, 3 another final status, 4 none).
See tools/crm/README.md.
"""

import argparse
import json
import os
import re
import signal
import sys
import time
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

FINAL = {"succeeded", "failed", "rejected", "expired", "duplicate"}


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SiteTable:
    """Everything the centre knows about one site."""

    def __init__(self):
        self.events = 0
        self.duplicates = 0
        self.order_violations = 0
        self.calls = {}       # call id -> {"state", "types": [...], ...}
        self.operators = {}   # operator id -> last operator event type
        self.results = {}     # command id -> [status, ...]

    def summary(self):
        return {"events": self.events, "duplicates": self.duplicates,
                "order_violations": self.order_violations, "calls": self.calls,
                "operators": self.operators, "results": self.results,
                "expired": sum("expired" in st for st in self.results.values())}


class Crm:
    def __init__(self, prefix, quiet=False):
        self.prefix = prefix
        self.quiet = quiet
        self.sites = {}
        # A real CRM would bound this (ids carry epoch and seq: a per-key
        # high-water mark is enough once order is known to hold).
        self.seen = set()
        self.last = {}        # (topic, key) -> (epoch, seq)

    def take(self, topic, partition, key, ev):
        parts = topic.split(".")
        site, kind = parts[-2], parts[-1]
        t = self.sites.setdefault(site, SiteTable())
        if ev.get("id") in self.seen:
            t.duplicates += 1
            return
        self.seen.add(ev.get("id"))
        t.events += 1
        if "seq" in ev:
            # Order is per key; keyless events only keep their partition's order.
            k = (topic, key or f"#partition{partition}")
            pos = (ev.get("epoch", 0), ev["seq"])
            if k in self.last and pos <= self.last[k]:
                t.order_violations += 1
            self.last[k] = pos
        data = ev.get("data") or {}
        etype = ev.get("type", "")
        if kind == "calls":
            c = t.calls.setdefault(ev.get("subject") or key, {"types": []})
            c["types"].append(etype)
            c["state"] = etype.rsplit(".", 1)[-1]
            for f in ("disposition", "answered_by", "duration_s", "talk_s"):
                if f in data:
                    c[f] = data[f]
            if not self.quiet:
                print(f"{site} call {ev.get('subject')} {c['state']}", flush=True)
        elif kind == "operators":
            t.operators[ev.get("subject") or key] = etype.rsplit(".", 1)[-1]
        elif kind == "results":
            t.results.setdefault(data.get("command_id", key), []).append(data.get("status"))

    def summary(self):
        sites = {s: t.summary() for s, t in sorted(self.sites.items())}
        return {"sites": sites,
                "totals": {k: sum(s[k] for s in sites.values())
                           for k in ("events", "duplicates", "order_violations", "expired")}}


def write_summary(crm, path):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(crm.summary(), f)
    os.replace(tmp, path)


def watch(args):
    sites = "|".join(re.escape(s) for s in args.sites.split(",")) if args.sites else r"[^.]+"
    pattern = rf"^{re.escape(args.prefix)}\.({sites})\.(calls|operators|results)$"
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "topic.metadata.refresh.interval.ms": int(args.metadata_refresh * 1000),
                  "enable.auto.commit": True})
    c.subscribe([pattern])
    crm = Crm(args.prefix, args.quiet)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    t0 = next_write = time.monotonic()
    try:
        while not stop and (not args.duration or time.monotonic() - t0 < args.duration):
            for m in c.consume(500, 0.5):
                if m.error():
                    if m.error().code() not in (KafkaError._PARTITION_EOF,
                                                KafkaError.UNKNOWN_TOPIC_OR_PART):
                        print(f"crm: {m.error()}", file=sys.stderr)
                    continue
                try:
                    ev = json.loads(m.value())
                except (TypeError, ValueError):
                    print(f"crm: not JSON at {m.topic()}/{m.partition()}@{m.offset()}", file=sys.stderr)
                    continue
                crm.take(m.topic(), m.partition(), (m.key() or b"").decode(), ev)
            if args.summary and time.monotonic() >= next_write:
                write_summary(crm, args.summary)
                next_write = time.monotonic() + args.interval
    finally:
        c.close()
    if args.summary:
        write_summary(crm, args.summary)
    print(json.dumps(crm.summary()), flush=True)
    return 0


def parse_value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v


def command_event(ctype, data, site, expires_in, cid=None, sender="crm"):
    now = time.time()
    cid = cid or f"central:crm:{int(now)}:{uuid.uuid4().int % 10**12}"
    return {"specversion": "1.0", "id": cid, "source": f"callbus://central/crm/{site}",
            "type": f"callbus.command.{ctype}", "time": rfc3339(now),
            "expires": rfc3339(now + expires_in), "sender": sender,
            "subject": data.get("call_id") or data.get("operator_id") or cid,
            "datacontenttype": "application/json", "data": data}


def send(args):
    data = {}
    for kv in args.fields:
        k, sep, v = kv.partition("=")
        if not sep:
            print(f"crm: expected key=value or key:=JSON, got {kv!r}", file=sys.stderr)
            return 2
        # key=value is a string (phone numbers stay strings); key:=JSON is typed.
        if k.endswith(":"):
            k, v = k[:-1], parse_value(v)
        data[k] = v
    ev = command_event(args.type, data, args.site, args.expires_in, args.id, args.sender)
    topic = f"{args.prefix}.{args.site}.commands"
    results_topic = f"{args.prefix}.{args.site}.results"
    # Watch the results from their current end, before the command exists.
    rc = None
    if args.wait:
        rc = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "crm-send",
                       "enable.auto.commit": False})
        md = rc.list_topics(results_topic, timeout=10).topics.get(results_topic)
        parts = sorted(md.partitions) if md and md.partitions else []
        ends = [TopicPartition(results_topic, p, rc.get_watermark_offsets(
            TopicPartition(results_topic, p), timeout=10)[1]) for p in parts]
        rc.assign(ends)
    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"})
    errors = []
    p.produce(topic, key=ev["subject"].encode(), value=json.dumps(ev).encode(),
              on_delivery=lambda err, _m: err and errors.append(err))
    if p.flush(30) or errors:
        print(f"crm: could not produce to {topic}: {errors}", file=sys.stderr)
        return 1
    print(ev["id"], flush=True)
    if not rc:
        return 0
    deadline = time.monotonic() + args.wait
    status = None
    try:
        while time.monotonic() < deadline and status not in FINAL:
            for m in rc.consume(100, 0.5):
                if m.error():
                    continue
                r = json.loads(m.value())
                if (r.get("data") or {}).get("command_id") == ev["id"]:
                    status = r["data"].get("status")
                    print(json.dumps(r["data"]), flush=True)
    finally:
        rc.close()
    return 0 if status == "succeeded" else 3 if status in FINAL else 4


def main(argv=None):
    ap = argparse.ArgumentParser(description="callbus reference CRM consumer")
    ap.add_argument("-b", "--bootstrap", default=os.environ.get("CENTRAL_BOOTSTRAP", "127.0.0.1:9092"),
                    help="central cluster (default $CENTRAL_BOOTSTRAP)")
    ap.add_argument("--prefix", default="callbus")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch", help="follow the central topics, keep the tables")
    w.add_argument("--sites", help="comma-separated site ids (default: every site)")
    w.add_argument("--group", default="callbus-crm")
    w.add_argument("--summary", help="rewrite this JSON file every --interval seconds")
    w.add_argument("--interval", type=float, default=1.0)
    w.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: never)")
    w.add_argument("--metadata-refresh", type=float, default=30,
                   help="seconds between looks for new site topics")
    w.add_argument("--quiet", action="store_true", help="no line per call event")
    s = sub.add_parser("send", help="send a command to a site through the centre")
    s.add_argument("--site", required=True)
    s.add_argument("--expires-in", type=float, default=60)
    s.add_argument("--id")
    s.add_argument("--sender", default="crm")
    s.add_argument("--wait", type=float, default=0, help="wait S seconds for the results")
    s.add_argument("type")
    s.add_argument("fields", nargs="*")
    args = ap.parse_args(argv)
    return watch(args) if args.cmd == "watch" else send(args)


if __name__ == "__main__":
    sys.exit(main())
