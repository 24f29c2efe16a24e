"""`make demo` (tools/demo.sh) really shows calls flowing: broker, simulated
call centre, agent, and a live tail of the calls topic."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_calls(kafka_bootstrap, tmp_path):
    env = dict(os.environ, DEMO_SECONDS="25", KAFKA_BOOTSTRAP=kafka_bootstrap)
    r = subprocess.run([str(ROOT / "tools" / "demo.sh")], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "callbus.call.started" in out, out[-2000:] + r.stderr[-2000:]
    assert "callbus.call.answered" in out
    assert "Agent metrics:" in r.stderr and "http://127.0.0.1:" in r.stderr
    # The operator page URL carries a demo token the gateway accepts.
    import re
    m = re.search(r"Operator page:\s+(http://127\.0\.0\.1:\d+)/#token=(\S+)", r.stderr)
    assert m, r.stderr[-2000:]
