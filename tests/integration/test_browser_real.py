"""The operator page (gateway/www) in real headless Chromium against the REAL
stack: amisim, the agent and callbus-gateway on a real broker. The pytest
side starts the programs and pauses op102/op103 so an inbound call goes to
op101; tests/browser/real_stack.test.js (node --test, playwright-core) signs
in, injects the call into amisim over AMI, accepts, reloads, hangs up, and
opens the supervisor wallboard meanwhile, and writes screenshots under the
test's tmp_path/screenshots."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from callbus_harness import (GATEWAY_SECRET, GwClient, messages, operator_token, start_agent, start_amisim,
                             start_gateway, write_agent_conf, write_gateway_conf)
from conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
COMMANDS_CONF = 'commands: { operator_phone = "Local/%s@phones"; };'


def _browser_deps():
    """Skips unless Chromium, Node and the npm packages are there (npm ci from
    package-lock.json installs those when missing; its output is kept in the
    skip reason). Under `make test` (CALLBUS_NO_SKIP=1) a skip is a failure."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    node = shutil.which("node")
    if not node:
        pytest.skip("node (>= 20) is missing")
    mods = BROWSER_DIR / "node_modules"
    npm_said = ""
    if not (mods / "playwright-core").is_dir() or not (mods / "ws").is_dir():
        npm = shutil.which("npm")
        if not npm:
            pytest.skip("npm is missing (apt-get install -y npm)")
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                           capture_output=True, text=True, timeout=300)
        npm_said = f"\nnpm ci exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-3000:]}"
    if not (mods / "playwright-core").is_dir() or not (mods / "ws").is_dir():
        pytest.skip(f"{mods} lacks playwright-core or ws (npm ci in tests/browser failed){npm_said}")
    return node


def _command(client, cmd, data, cid):
    client.send({"type": "command", "id": cid, "command": cmd, "data": data})
    return client.recv_until(lambda m: m.get("id") == cid and m["type"] in ("command_ack", "error"),
                             what=f"answer to {cmd}", seen=False)


@pytest.mark.skipif(not (ROOT / "agent" / "state.c").exists(),
                    reason="the agent does not publish the state topics yet (agent/state.c)")
def test_operator_page_against_the_real_gateway(procs, tmp_path, site, kafka_bootstrap):
    node = _browser_deps()
    amisim, ami_port = start_amisim(procs, "--operators", "3", "--queues", "support", "--rate", "0")
    conf, _ = write_agent_conf(tmp_path, site, kafka_bootstrap, ami_port, top_extra=COMMANDS_CONF)
    start_agent(procs, conf)
    wait_until(lambda: len(messages(kafka_bootstrap, site.topic("state.operators"), timeout=5, idle=0.3)) >= 3,
               timeout=30, what="the operators' state records")
    gw_conf = write_gateway_conf(tmp_path, site, kafka_bootstrap)
    _, url = start_gateway(procs, gw_conf)

    # A supervisor pauses everybody but op101: the inbound call goes to op101.
    sup = GwClient(url, operator_token(site, "sup1", "supervisor"))
    for op in ("op102", "op103"):
        ack = _command(sup, "pause", {"operator_id": op, "queue": "support"}, cid=f"p-{op}")
        assert ack["type"] == "command_ack", ack
    for op in ("op102", "op103"):
        sup.recv_until(lambda m: m["type"] == "update" and m["kind"] == "operator" and m["id"] == op
                       and m["state"] and m["state"]["paused"], what=f"{op} paused")
    sup.close()

    out = tmp_path / "screenshots"
    out.mkdir()
    env = dict(os.environ, GATEWAY_URL=url, OP_TOKEN=operator_token(site, "op101", ttl=900),
               SUP_TOKEN=operator_token(site, "sup1", "supervisor", ttl=900),
               AMI_PORT=str(ami_port), BROWSER_OUT=str(out), CHROMIUM=CHROMIUM,
               JWT_SECRET=GATEWAY_SECRET, SITE_ID=site.id)
    try:
        r = subprocess.run([node, "--test", "--test-reporter=spec", "real_stack.test.js"],
                           cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"browser test timed out after 120 s\n{e.stdout or ''}\n{e.stderr or ''}")
    print(r.stdout)
    print(r.stderr)
    print(f"screenshots in {out}")
    assert r.returncode == 0, f"node --test real_stack.test.js failed:\n{r.stdout}\n{r.stderr}"
    shots = sorted(p.name for p in out.glob("*.png"))
    assert shots == ["01-signed-in.png", "02-offered.png", "03-in-call.png", "03b-wallboard.png",
                     "04-after-reload.png", "05-after-call.png"], shots

    # The browser's commands reached Kafka as op101's, made by the gateway.
    cmds = messages(kafka_bootstrap, site.topic("commands"), timeout=5, idle=0.5)
    mine = [(c["type"], c["sender"]) for c in cmds if c["sender"] == "gateway:op101"]
    assert ("callbus.command.answer", "gateway:op101") in mine, cmds
    assert ("callbus.command.hangup", "gateway:op101") in mine, cmds
