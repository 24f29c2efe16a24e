"""`make demo` (tools/demo.sh) really shows calls flowing: broker, simulated
call centre, agent, and a live tail of the calls topic; and the operator
page URL it prints carries a token its gateway accepts."""

import os
import re
import subprocess
from pathlib import Path

from callbus_harness import GwClient
from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_calls(kafka_bootstrap, tmp_path):
    env = dict(os.environ, DEMO_SECONDS="25", KAFKA_BOOTSTRAP=kafka_bootstrap)
    out, err = tmp_path / "demo.out", tmp_path / "demo.err"
    with open(out, "w") as o, open(err, "w") as e:
        demo = subprocess.Popen([str(ROOT / "tools" / "demo.sh")], env=env, stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL)
    try:
        # While the demo runs: the printed operator page URL signs in at its gateway.
        m = wait_until(lambda: re.search(r"Operator page:\s+(http://127\.0\.0\.1:\d+)/#token=(\S+)",
                                         err.read_text()) or demo.poll() is not None,
                       timeout=90, what="the demo's operator page URL")
        assert m is not True and demo.poll() is None, err.read_text()[-3000:]
        op = GwClient(m.group(1), m.group(2))
        try:
            assert op.welcome["type"] == "welcome" and op.welcome["operator_id"] == "op101", op.welcome
            assert op.first["type"] == "snapshot", op.first
        finally:
            op.close()
        rc = demo.wait(timeout=120)
    finally:
        if demo.poll() is None:
            demo.terminate()
            demo.wait(30)
    stdout, stderr = out.read_text(), err.read_text()
    assert rc == 0, stderr[-3000:]
    assert "callbus.call.started" in stdout, stdout[-2000:] + stderr[-2000:]
    assert "callbus.call.answered" in stdout
    assert "Agent metrics:" in stderr and "http://127.0.0.1:" in stderr
