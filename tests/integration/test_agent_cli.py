"""callbus-agent's command line: --help, --version, --check-config on the
shipped example and on broken files; and the callbus CLI's per-command
--help."""

import subprocess
from pathlib import Path

from conftest import build_path

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run([str(build_path("callbus-agent")), *map(str, args)],
                          capture_output=True, text=True, timeout=30)


def test_example_config_is_valid():
    r = run("--check-config", "-c", ROOT / "agent" / "agent.conf.example")
    assert r.returncode == 0, r.stderr
    assert "configuration is valid" in r.stdout


def test_help_and_version():
    assert "--check-config" in run("--help").stdout
    assert run("--version").stdout.startswith("callbus-agent ")


def test_every_callbus_command_has_help():
    """`callbus CMD --help` prints that command's usage on stdout and exits 0;
    an unknown option prints it on stderr and exits 2."""
    cli = str(build_path("callbus"))
    for cmd in ("tail", "send", "lag", "replay", "check"):
        r = subprocess.run([cli, cmd, "--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith(f"usage: callbus {cmd}"), (cmd, r)
        r = subprocess.run([cli, cmd, "--no-such-option"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and f"usage: callbus {cmd}" in r.stderr and not r.stdout, (cmd, r)


def test_bad_configs_are_explained(tmp_path):
    cases = {
        'site = "riga"\nagent: { ami: { port = 99999; }; };': "agent.ami.port",
        'commands: { number_patterns = [ "([" ]; };': "number_patterns",
        'commands: { operator_phone = "PJSIP/op"; };': "operator_phone",
        'kafka = [ "no-equals-sign" ];': "name=value",
    }
    for text, fragment in cases.items():
        p = tmp_path / "bad.conf"
        p.write_text(text)
        r = run("--check-config", "-c", p)
        assert r.returncode == 2, (text, r.stdout, r.stderr)
        assert fragment in r.stderr, (text, r.stderr)
    r = run("--check-config", "-c", tmp_path / "missing.conf")
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = run("-c", ROOT / "agent" / "agent.conf.example", "-X", "no.such.property=1", "--check-config")
    assert r.returncode == 0  # -X is checked by librdkafka when the agent starts


def test_a_bad_kafka_property_is_refused_by_every_program(tmp_path):
    """A librdkafka property it does not know (or a bad value) stops every
    program at start with an error naming it: none runs on without it
    (`callbus send --no-wait` used to drop it silently)."""
    bad = ["-X", "bootstrap.servers=127.0.0.1:9", "-X", "no.such.property=1"]
    why = 'kafka property no.such.property: No such configuration property: "no.such.property"'
    conf = tmp_path / "site.conf"
    conf.write_text(f'site = "riga";\nstate_dir = "{tmp_path}";\n'
                    'gateway: { listen = "127.0.0.1:0"; jwt_secret = "0123456789abcdef0123456789abcdef"; };\n')
    programs = {
        "callbus-agent": [build_path("callbus-agent"), "-c", conf, *bad],
        "callbus-gateway": [build_path("callbus-gateway"), "-c", conf, *bad],
    }
    cli = [build_path("callbus"), "-c", conf, *bad]
    for args in (["tail", "calls"], ["send", "--no-wait", "hangup", "call_id=1"],
                 ["lag", "--central", "127.0.0.1:9"], ["replay", "calls", "--from", "-1h"],
                 ["check", "--schemas", ROOT / "schemas", "calls"]):
        programs[f"callbus {args[0]}"] = [*cli, *args]
    for name, argv in programs.items():
        r = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and why in r.stderr, (name, r.returncode, r.stderr)
    # A bad value is refused the same way, naming the property.
    r = subprocess.run(list(map(str, [*cli[:-2], "-X", "acks=sometimes", "send", "--no-wait", "hangup", "call_id=1"])),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "kafka property acks:" in r.stderr, r.stderr


def test_the_producer_does_not_linger(tmp_path):
    """The agent's producer sends a message as soon as it has it
    (linger.ms=0, issue 14 goal 4: 1 ms of linger was 0.7 ms of the AMI
    event -> browser p50), unless the site's kafka list says otherwise.
    librdkafka's debug=conf lists the client's non-default properties when
    it is created (linger.ms is queue.buffering.max.ms there), before any
    broker or AMI connection, so no broker is needed."""
    conf = tmp_path / "agent.conf"

    def producer_linger(*extra):
        kafka = ", ".join(f'"{p}"' for p in ("bootstrap.servers=127.0.0.1:9", *extra))
        conf.write_text(f'site = "riga";\nstate_dir = "{tmp_path}";\nkafka = [ {kafka} ];\n'
                        'agent: { ami: { port = 9; secret = "x"; }; };\n')
        p = subprocess.Popen([str(build_path("callbus-agent")), "-c", str(conf), "-X", "debug=conf"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = None
        try:
            for line in p.stderr:
                if "#producer-" in line and "queue.buffering.max.ms = " in line:
                    found = line.rsplit("= ", 1)[1].strip()
                    break
        finally:
            p.kill()
            p.wait(10)
        return found

    assert producer_linger() == "0"
    assert producer_linger("linger.ms=3") == "3"
