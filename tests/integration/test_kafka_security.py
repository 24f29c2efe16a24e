"""test_kafka_security.py -- callbus against a Kafka that requires TLS and
SASL, as a production site's does (issue 15). One broker for the module,
started by tests/kafka/kafka.sh with KAFKA_SECURITY=sasl_ssl: its clients'
listener is SASL_SSL with SCRAM-SHA-512 and PLAIN, its certificate signed by
a CA made for the run.

- The agent, the gateway and the CLI, configured only through pass-through
  librdkafka properties (the config file's kafka list, and -X), carry a
  call from amisim to a supervisor's browser connection and to `callbus
  tail`.
- MirrorMaker 2 (SCRAM-SHA-512) copies a topic from it to the session's
  broker.
- A wrong password or a CA that did not sign the broker's certificate is
  refused, and each program says which.
- SCRAM from the callbus programs: Debian 12's librdkafka (2.0.2) computes
  SCRAM's final message with the client nonce twice, which Kafka 4.x refuses
  as invalid credentials (librdkafka#4895, fixed in 2.6.1). The test pins
  that fact for the librdkafka the programs are built with, so that a newer
  one (which must succeed) shows up; until then the programs use PLAIN over
  the same TLS (docs/runbook.md, "Kafka security").
"""

import json
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from callbus_harness import (GwClient, SAMPLES, operator_token, start_amisim, start_agent, start_gateway,
                             write_agent_conf, write_gateway_conf)
from conftest import KAFKA_SH, KafkaBroker, build_path, consume_all, wait_until
from test_cli_ops import mm2_config

CAPTURE = "01-inbound-queue-answered"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    b = KafkaBroker(tmp_path_factory.mktemp("kafka-sasl-ssl"), security="sasl_ssl")
    b.start(timeout=120)
    yield b
    try:
        b.stop()
    except Exception:
        b.kill()


def client_props(broker, mechanism="PLAIN", password=None, ca=None):
    """librdkafka properties of a client of the sasl_ssl broker, as a site's
    config file would list them."""
    return [f"bootstrap.servers={broker.bootstrap}", "security.protocol=SASL_SSL",
            f"sasl.mechanism={mechanism}", "sasl.username=callbus",
            f"sasl.password={password or broker.password('callbus')}", f"ssl.ca.location={ca or broker.ca}"]


def python_client_conf(broker):
    """The tests' own reader (confluent-kafka brings a librdkafka without the
    SCRAM bug)."""
    return {"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "callbus",
            "sasl.password": broker.password("callbus"), "ssl.ca.location": str(broker.ca)}


def librdkafka_version():
    out = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True, text=True).stdout
    return tuple(int(x) for x in re.findall(r"\d+", out)[:3])


def kafka_list(props):
    return "kafka = [ " + ", ".join(json.dumps(p) for p in props) + " ];"


def test_agent_gateway_and_cli_over_sasl_ssl(secure, site, procs, tmp_path):
    props = client_props(secure)
    gconf = write_gateway_conf(tmp_path, site, "unused:1")
    gconf.write_text(gconf.read_text().replace('kafka = [ "bootstrap.servers=unused:1" ];', kafka_list(props)))
    _, url = start_gateway(procs, gconf)
    sup = GwClient(url, operator_token(site, "sup1", "supervisor"))

    _, ami_port = start_amisim(procs, "--replay", SAMPLES / f"{CAPTURE}.ami", "--max")
    aconf, http_port = write_agent_conf(tmp_path, site, secure.bootstrap, ami_port, kafka_extra=props[1:])
    start_agent(procs, aconf)
    # through the agent's producer and the gateway's consumer, both SASL_SSL
    sup.recv_until(lambda m: m["type"] == "update" and m["kind"] == "operator" and m["state"]
                   and m["state"]["today"]["handled"] == 1 and not m["state"]["call"],
                   timeout=60, what="the call's end at the supervisor")
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5).read())
    assert health["kafka"] == "up"

    # the CLI, with the same properties given as -X
    xs = [a for p in props for a in ("-X", p)]
    r = subprocess.run([build_path("callbus"), *xs, "tail", "--from-beginning", "--json", "--idle-exit", "3",
                        site.topic("calls")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ended = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["data"]["disposition"] for e in ended if e["type"] == "callbus.call.ended"] == ["answered"], r.stdout


def test_mirrormaker2_over_sasl_ssl_scram(secure, kafka_bootstrap, site, procs, tmp_path):
    topic = site.topic("calls")
    records = [(f"k{i}", json.dumps({"n": i})) for i in range(20)]
    from confluent_kafka import Producer
    p = Producer(python_client_conf(secure))
    for k, v in records:
        p.produce(topic, key=k, value=v)
    assert p.flush(30) == 0
    cfg = mm2_config(tmp_path / "mm2.properties", secure.bootstrap, kafka_bootstrap, re.escape(topic))
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="callbus" '
            f'password="{secure.password("callbus")}";')
    with open(cfg, "a") as f:
        f.write("site.security.protocol = SASL_SSL\nsite.sasl.mechanism = SCRAM-SHA-512\n"
                f"site.sasl.jaas.config = {jaas}\nsite.ssl.truststore.type = PEM\n"
                f"site.ssl.truststore.location = {secure.ca}\n")
    # the quick JIT only: a JVM that runs for a minute does not miss the rest
    mm2 = procs.start([KAFKA_SH, "mirror-maker", cfg, "--clusters", "central"], name="mm2",
                      env={"KAFKA_OPTS": "-XX:TieredStopAtLevel=1"})
    got = wait_until(lambda: (mm2.alive or pytest.fail(mm2.log_tail(), pytrace=False)) and
                     len(consume_all(kafka_bootstrap, topic, timeout=5)) >= len(records) and
                     consume_all(kafka_bootstrap, topic, timeout=5),
                     timeout=240, interval=3, what="MirrorMaker 2 to copy the topic")
    assert sorted((r.key.decode(), r.value.decode()) for r in got) == sorted(records)
    assert "Authentication failed" not in mm2.output()


def test_wrong_password_or_ca_is_refused_clearly(secure, site, procs, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=not ours",
                    "-keyout", tmp_path / "other-ca.key", "-out", other_ca], check=True, capture_output=True)
    bad_password = client_props(secure, password="not-the-password")
    bad_ca = client_props(secure, ca=other_ca)
    refused_password = r"SASL authentication error: Authentication failed"
    refused_ca = r"SSL handshake failed: .*certificate verify failed"

    # the agent keeps running, says why it cannot deliver, and /health says so
    _, ami_port = start_amisim(procs)
    aconf, http_port = write_agent_conf(tmp_path, site, secure.bootstrap, ami_port, kafka_extra=bad_password[1:])
    agent = start_agent(procs, aconf, wait_login=False)
    agent.wait_for(r"kafka: .*" + refused_password, timeout=30, which="err")

    def kafka_down():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5)
            return False
        except urllib.error.HTTPError as e:   # 503 with the reason in the body
            return e.code == 503 and json.loads(e.read()).get("kafka") == "down"
    wait_until(kafka_down, timeout=30, what="/health to say kafka down")
    agent.stop()

    gconf = write_gateway_conf(tmp_path, site, "unused:1")
    gconf.write_text(gconf.read_text().replace('kafka = [ "bootstrap.servers=unused:1" ];', kafka_list(bad_ca)))
    gw = procs.start([build_path("callbus-gateway"), "-c", gconf], name="gateway")
    gw.wait_for(refused_ca, timeout=30, which="err")
    gw.stop()

    for props, refused in ((bad_password, refused_password), (bad_ca, refused_ca)):
        xs = [a for p in props for a in ("-X", p)]
        r = subprocess.run([build_path("callbus"), *xs, "tail", "--from-beginning", "--idle-exit",
                            "2", site.topic("calls")], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        assert re.search(refused, r.stderr), r.stderr


def test_scram_from_callbus_programs_needs_librdkafka_2_6_1(secure, site, procs):
    props = client_props(secure, mechanism="SCRAM-SHA-512")
    python_ok = True
    try:
        from confluent_kafka.admin import AdminClient
        AdminClient(python_client_conf(secure)).list_topics(timeout=10)
    except Exception:
        python_ok = False
    assert python_ok, "the broker's SCRAM user does not work for a fixed librdkafka"
    xs = [a for p in props for a in ("-X", p)]
    r = subprocess.run([build_path("callbus"), *xs, "tail", "--from-beginning", "--idle-exit",
                        "2", site.topic("calls")], capture_output=True, text=True, timeout=60)
    refused = "Authentication failed during authentication due to invalid credentials" in r.stderr
    if librdkafka_version() < (2, 6, 1):
        assert refused, f"librdkafka {librdkafka_version()} authenticated with SCRAM: PLAIN is no longer needed\n{r.stderr}"
    else:
        assert not refused, r.stderr
