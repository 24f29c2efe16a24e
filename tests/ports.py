"""ports.py -- the one free_port of the tests, benchmarks and compose runs.

A port from bind(0) is an ephemeral one: any outgoing connection made
before the service binds it (a client reconnecting to a broker once a
second) can take it as its source port, and the service that was to listen
there never comes up (a CI run of compose: a gateway's page never answered,
commit 0739188). Ports here come from below the kernel's
ip_local_port_range instead, checked free on the host asked for, and are
never handed out twice in one process, since callers choose several before
anything binds them.

Imported as `from ports import free_port` once tests/ is on sys.path
(conftest.py, tests/bench/bench.py and tests/compose/hostnet.py put it there,
so they still run as plain scripts).
"""

import random
import socket

_taken = set()
_range = None


def ephemeral_range():
    """(low, high) of the kernel's ephemeral ports, read once."""
    global _range
    if _range is None:
        try:
            lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
            _range = int(lo), int(hi)
        except (OSError, ValueError):
            _range = 32768, 60999
    return _range


def free_port(host="127.0.0.1"):
    """A TCP port free on host right now, below the ephemeral range, not
    handed out before by this process."""
    hi = ephemeral_range()[0] - 1
    lo = max(1024, hi - 12000)
    for _ in range(1000):
        port = random.randint(lo, hi)
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port on {host} in {lo}-{hi}")
