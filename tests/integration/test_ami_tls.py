"""AMI over TLS (manager.conf tlsenable): the agent checks Asterisk's
certificate, chain and name, before it sends anything, its secret included;
amisim serves TLS as Asterisk does. A wrong CA or a wrong name is refused
with a reason that says what to change, and the agent keeps retrying."""

import json

from callbus_harness import messages, metrics, start_agent, start_amisim, tls_files, write_agent_conf
from conftest import wait_until

CAPTURE_ARGS = ("--simulate", "--operators", "5", "--queues", "support", "--rate", "2", "--talk", "1-2",
                "--seed", "7")


def tls_amisim(procs, tmp_path, names=("IP:127.0.0.1", "DNS:localhost")):
    ca, cert, key = tls_files(tmp_path / "pbx", names=names)
    stats = tmp_path / "amisim-stats.json"
    amisim, port = start_amisim(procs, "--tls-cert", cert, "--tls-key", key, "--stats-file", stats,
                                "--stats-interval", "0.3", *CAPTURE_ARGS)
    return ca, port, stats


def logins(stats):
    try:
        return json.loads(stats.read_text()).get("actions", {}).get("Login", 0)
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_agent_reads_ami_over_tls(procs, tmp_path, site, kafka_bootstrap):
    ca, port, stats = tls_amisim(procs, tmp_path)
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port,
                                  ami_extra=f'tls = true; tls_ca_file = "{ca}";')
    start_agent(procs, conf)
    wait_until(lambda: metrics(http)["callbus_agent_ami_up"] == 1, timeout=20, what="AMI up over TLS")
    events = wait_until(lambda: [e for e in messages(kafka_bootstrap, site.topic("ami"), idle=0.5)
                                 if dict(e["data"].get("headers") or []).get("Event") == "Newchannel"] or None,
                        timeout=30, what="AMI events read through TLS")
    assert events


def test_untrusted_certificate_is_refused_before_the_login(procs, tmp_path, site, kafka_bootstrap):
    _, port, stats = tls_amisim(procs, tmp_path)
    other_ca, _, _ = tls_files(tmp_path / "other", prefix="other")
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port,
                                  ami_extra=f'tls = true; tls_ca_file = "{other_ca}";')
    agent = start_agent(procs, conf, wait_login=False)
    agent.wait_for(r"TLS: Asterisk's certificate is not trusted: .*agent\.ami\.tls_ca_file must hold the CA",
                   timeout=20, which="err")
    agent.wait_for(r"retrying in", timeout=10, which="err")
    assert agent.alive and metrics(http)["callbus_agent_ami_up"] == 0
    assert logins(stats) == 0, "the secret went to a server the agent does not trust"


def test_certificate_for_another_name_is_refused(procs, tmp_path, site, kafka_bootstrap):
    ca, port, stats = tls_amisim(procs, tmp_path, names=("DNS:pbx1.riga.example",))
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port,
                                  ami_extra=f'tls = true; tls_ca_file = "{ca}";')
    agent = start_agent(procs, conf, wait_login=False)
    agent.wait_for(r"TLS: Asterisk's certificate is not for the address 127\.0\.0\.1 "
                   r"\(set agent\.ami\.tls_server_name", timeout=20, which="err")
    assert metrics(http)["callbus_agent_ami_up"] == 0 and logins(stats) == 0
    # Naming the certificate's name in tls_server_name is the fix the log gives.
    agent.stop()
    conf, http = write_agent_conf(tmp_path, site, kafka_bootstrap, port, name="agent2",
                                  ami_extra=f'tls = true; tls_ca_file = "{ca}"; '
                                            f'tls_server_name = "pbx1.riga.example";')
    start_agent(procs, conf, name="agent2")
    wait_until(lambda: metrics(http)["callbus_agent_ami_up"] == 1, timeout=20, what="AMI up with the right name")
