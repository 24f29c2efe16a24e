"""test_compose.py -- compose/ (two sites and a centre as Docker Compose),
proven consistent without Docker.

1. compose-go, the Compose specification's own Go implementation, loads
   compose/compose.yaml with compose/.env.example: schema, interpolation,
   references, and that every secret has content and every bind mount a
   source (tests/compose/main.go, built once into the build dir).
2. Every callbus config under compose/ passes the programs' own
   --check-config, run in a private mount namespace where /run/secrets holds
   only the secrets compose gives that service, as in its container.
3. tests/compose/checks.py compares the resolved project with the configs,
   the dialplan, manager.conf, MirrorMaker's properties, the Dockerfile and
   the Makefile (see its docstring).
4. The demo token minter (tools/mint_token.py) opens the real gateway run
   with the compose gateway file and secret (the one test that uses the
   session's Kafka broker).
5. Asterisk's entrypoint (compose/asterisk/start.sh), run with a fake
   asterisk, puts the AMI secret into manager.conf.

Every check is shown failing on a broken copy. No Docker: about 10 s on an
idle 2-core machine (the first run also builds the validator, ~20 s).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, build_dir, build_path

sys.path.insert(0, str(ROOT / "tests" / "compose"))
import checks  # noqa: E402
import composecheck as compose_validator  # noqa: E402
import libconfig_reader  # noqa: E402

COMPOSE = ROOT / "compose"


# ---------------------------------------------------------------- validator

@pytest.fixture(scope="module")
def composecheck():
    """tests/compose built into <build>/tests/composecheck, rebuilt when its
    sources change. Offline: setup.sh fetched the modules."""
    try:
        return compose_validator.build(build_dir() / "tests" / "composecheck")
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def load(composecheck, compose_dir, env_file=None):
    """(project dict, None) or (None, compose-go's complaint)."""
    return compose_validator.load(composecheck, compose_dir / "compose.yaml",
                                  [env_file or compose_dir / ".env.example"])


def deployment(composecheck, compose_dir):
    project, err = load(composecheck, compose_dir)
    assert err is None, err
    return checks.Deployment(project, compose_dir, ROOT, build_dir())


@pytest.fixture(scope="module")
def real(composecheck):
    return deployment(composecheck, COMPOSE)


@pytest.fixture
def broken(tmp_path, composecheck):
    """broken(edits) -> (Deployment or None, compose-go error or None): a copy
    of the repository view compose/ needs (compose/ copied, the rest linked)
    with edits {path under compose/: text -> text} applied."""
    def make(edits):
        root = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        for entry in ROOT.iterdir():
            if entry.name not in ("compose", ".git"):
                (root / entry.name).symlink_to(entry)
        shutil.copytree(COMPOSE, root / "compose", symlinks=True)
        for rel, edit in edits.items():
            f = root / "compose" / rel
            before = f.read_text() if f.exists() else ""
            after = edit(before)
            if after is None:
                f.unlink()
            else:
                assert after != before, f"edit of {rel} changed nothing"
                f.write_text(after)
        project, err = load(composecheck, root / "compose")
        if err:
            return None, err
        return checks.Deployment(project, root / "compose", ROOT, build_dir()), None
    return make


def sub(old, new, count=1):
    """An edit replacing old by new (which must be there)."""
    def edit(text):
        assert old in text, f"{old!r} not in the file"
        return text.replace(old, new, count)
    return edit


def expect_problem(problems, pattern):
    """The broken copy fails the check, with a problem matching pattern."""
    assert problems, "the broken copy passed the check"
    assert any(re.search(pattern, p) for p in problems), f"no /{pattern}/ in {problems}"
    return problems


# ---------------------------------------------------------------- 1. compose-go

def test_compose_go_loads_the_deployment(real):
    services = real.services
    print(f"compose-go: {len(services)} services, {len(real.p['networks'])} networks, "
          f"{len(real.p['secrets'])} secrets")
    for site in ("tallinn", "moscow"):
        for role in ("kafka", "asterisk", "agent", "gateway"):
            assert f"{site}-{role}" in services
    assert {"central-kafka", "mirror-maker", "crm"} <= set(services)


@pytest.mark.parametrize("what,edits,env_drop,pattern", [
    ("schema: unknown key", {"compose.yaml": sub("    restart: unless-stopped\n    entrypoint:",
                                                 "    restart: unless-stopped\n    entrypont: [sh]\n    entrypoint:")},
     None, r"entrypont"),
    ("undefined network", {"compose.yaml": sub("networks: [moscow-lan]\n", "networks: [moscow-lan, moscow-wan]\n")},
     None, r"undefined network moscow-wan"),
    ("secret variable unset", {}, "CALLBUS_JWT_SECRET", r"CALLBUS_JWT_SECRET"),
    ("bind mount source missing", {"sites/moscow-gateway.conf": lambda t: None}, None, r"moscow-gateway\.conf does not exist"),
    ("depends_on an unknown service", {"compose.yaml": sub("tallinn-agent: {condition: service_started}",
                                                           "tallin-agent: {condition: service_started}")},
     None, r"undefined service"),
])
def test_compose_go_rejects_broken_copies(broken, tmp_path, composecheck, what, edits, env_drop, pattern):
    if env_drop:
        env = tmp_path / "env"
        env.write_text("".join(line + "\n" for line in (COMPOSE / ".env.example").read_text().splitlines()
                               if not line.startswith(env_drop + "=")))
        _, err = load(composecheck, COMPOSE, env)
    else:
        _, err = broken(edits)
    assert err, f"{what}: compose-go accepted it"
    assert re.search(pattern, err), f"{what}: {err}"


# ---------------------------------------------------------------- 2. --check-config

def demo_secrets(project, service):
    """{secret target name: content} the service gets, from .env.example."""
    env = dict(line.split("=", 1) for line in (COMPOSE / ".env.example").read_text().splitlines()
               if line and not line.startswith("#") and "=" in line)
    out = {}
    for s in project["services"][service].get("secrets") or []:
        var = project["secrets"][s["source"]].get("environment")
        out[s.get("target") or s["source"]] = env[var]
    return out


def check_config(program, conf, secrets, tmp_path):
    """Run `program --check-config -c conf` where /run/secrets holds secrets,
    as in the container: a private mount namespace with its own /run."""
    sdir = tmp_path / "secrets"
    shutil.rmtree(sdir, ignore_errors=True)
    sdir.mkdir()
    for name, content in secrets.items():
        (sdir / name).write_text(content)
    ns = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    script = 'mount -t tmpfs tmpfs /run && mkdir /run/secrets && cp -R "$1"/. /run/secrets/ && shift && exec "$@"'
    r = subprocess.run(ns + ["sh", "-c", script, "sh", str(sdir), str(program), "--check-config", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_every_config_passes_check_config(real, tmp_path):
    """Each service's config, with only the secrets that service is given."""
    seen = 0
    for prog, role in (("callbus-agent", "agent"), ("callbus-gateway", "gateway")):
        for svc, argv in real.running(prog):
            conf, err = real.config_path(svc, argv)
            assert err is None, err
            rc, out = check_config(build_path(prog), conf, demo_secrets(real.p, svc), tmp_path)
            print(f"{svc}: {out}")
            assert rc == 0, f"{prog} --check-config -c {conf}: {out}"
            # the test's reader of the file agrees with the program's loader
            cfg = libconfig_reader.load(conf)
            assert f"site {cfg['site']}," in out
            if role == "agent":
                ami = f"{cfg['agent']['ami']['host']}:{cfg['agent']['ami']['port']}"
                assert f"agent {cfg['agent']['id']}, AMI {ami}" in out
            else:
                assert f"gateway {cfg['gateway']['id']}, listen {cfg['gateway']['listen']}" in out
            seen += 1
    for conf in sorted((COMPOSE / "centre").glob("*.conf")):
        rc, out = check_config(build_path("callbus-agent"), conf, {}, tmp_path)
        print(f"centre/{conf.name}: {out}")
        assert rc == 0, out
        seen += 1
    assert seen >= 6


def test_check_config_fails_on_a_broken_config(real, tmp_path):
    agent_secrets = demo_secrets(real.p, "tallinn-agent")
    bad = tmp_path / "bad.conf"
    bad.write_text((COMPOSE / "sites" / "tallinn-agent.conf").read_text().replace('site = "tallinn";', 'site = "tal linn";'))
    rc, out = check_config(build_path("callbus-agent"), bad, agent_secrets, tmp_path)
    assert rc == 2 and "site" in out, out
    # the AMI secret is a compose secret: without it the agent refuses the file
    rc, out = check_config(build_path("callbus-agent"), COMPOSE / "sites" / "tallinn-agent.conf", {}, tmp_path)
    assert rc == 2 and "secret_file" in out, out
    # the gateway is not given the AMI secret: its file must not name it (the
    # loader reads every secret file a config names)
    rc, out = check_config(build_path("callbus-gateway"), COMPOSE / "sites" / "tallinn-agent.conf",
                           demo_secrets(real.p, "tallinn-gateway"), tmp_path)
    assert rc == 2 and "secret_file" in out, out
    bad.write_text((COMPOSE / "sites" / "moscow-gateway.conf").read_text().replace('jwt_alg = "HS256"', 'jwt_alg = "none"'))
    rc, out = check_config(build_path("callbus-gateway"), bad, demo_secrets(real.p, "moscow-gateway"), tmp_path)
    assert rc == 2 and "jwt_alg" in out, out


# ---------------------------------------------------------------- 3. consistency

def test_images_are_the_pinned_releases(real, broken):
    assert real.check_images() == []
    d, err = broken({"compose.yaml": sub("image: callbus-kafka:4.3.1\n", "image: callbus-kafka:4.2.0\n")})
    expect_problem(d.check_images(), r"pins Kafka 4\.3\.1")
    d, err = broken({"compose.yaml": sub("/.cache/callbus/kafka-4.3.1/libs}", "/.cache/callbus/kafka-4.2.0/libs}")})
    expect_problem(d.check_images(), r"kafka-libs .* is not the jars of Kafka 4\.3\.1")
    d, err = broken({"compose.yaml": sub("    <<: *kafka-image\n    restart: unless-stopped\n    command: [\"mirror-maker\"",
                                         "    image: apache/kafka:4.3.1\n    restart: unless-stopped\n    command: [\"mirror-maker\"")})
    expect_problem(d.check_images(), r"service mirror-maker: image apache/kafka:4\.3\.1 is not built from compose/kafka")


def test_site_configs_agree_with_compose(real, broken):
    assert real.check_site_configs() == []
    assert real.check_centre() == []
    d, _ = broken({"sites/tallinn-agent.conf": sub("bootstrap.servers=tallinn-kafka:9092", "bootstrap.servers=tallinn-kafka:9094")})
    expect_problem(d.check_site_configs(), r"advertises no listener tallinn-kafka:9094")
    d, _ = broken({"sites/moscow-agent.conf": sub('host = "moscow-asterisk"', 'host = "tallinn-asterisk"')})
    expect_problem(d.check_site_configs(), r"does not reach moscow-asterisk")
    d, _ = broken({"sites/moscow-gateway.conf": sub('listen = "0.0.0.0:8080"', 'listen = "0.0.0.0:8090"')})
    expect_problem(d.check_site_configs(), r"gateway.listen port 8090 is not published")
    d, _ = broken({"sites/tallinn-agent.conf": sub("/run/secrets/ami_secret", "/run/secrets/tallinn_ami")})
    expect_problem(d.check_site_configs(), r"secret_file /run/secrets/tallinn_ami is not a secret")
    d, _ = broken({"compose.yaml": sub("    networks: [tallinn-lan]\n\n  # ---", "    networks: [tallinn-lan, wan-tallinn]\n\n  # ---")})
    expect_problem(d.check_site_configs(), r"tallinn-gateway .*never the WAN")
    d, _ = broken({"sites/moscow-gateway.conf": sub('topic_prefix = "callbus"', 'topic_prefix = "cb"')})
    expect_problem(d.check_site_configs(), r"moscow-gateway.conf has topic_prefix cb, moscow-agent.conf callbus")
    d, _ = broken({"centre/moscow.conf": sub("central-kafka:9092", "moscow-kafka:9092")})
    expect_problem(d.check_centre(), r"no Kafka service is reachable as moscow-kafka from crm")
    d, _ = broken({"centre/tallinn.conf": sub('topic_prefix = "callbus"', 'topic_prefix = "cb"')})
    expect_problem(d.check_centre(), r"topic_prefix differs")
    d, _ = broken({"compose.yaml": sub('"watch", "--sites", "tallinn,moscow"', '"watch", "--sites", "tallinn"')})
    expect_problem(d.check_centre(), r"crm.py --sites tallinn, compose runs \['moscow', 'tallinn'\]")
    d, _ = broken({"compose.yaml": sub('crm.py", "-b", "central-kafka:9092"', 'crm.py", "-b", "central-kafka:19092"')})
    expect_problem(d.check_centre(), r"crm.py central-kafka:19092: central-kafka advertises no listener")


def test_dialplan_has_every_context_the_agent_uses(real, broken):
    assert real.check_dialplan() == []
    d, _ = broken({"asterisk/extensions.conf": sub("\n[answer]\n", "\n[accept]\n")})
    expect_problem(d.check_dialplan(), r"answer_context \[answer\] is missing")
    d, _ = broken({"asterisk/extensions.conf": sub("exten => _+XX.,1,Dial(Local", "exten => _00XX.,1,Dial(Local")})
    expect_problem(d.check_dialplan(), r"\[c2c-outbound\] cannot dial \+3725552001")
    d, _ = broken({"sites/moscow-agent.conf": sub('operator_phone = "Local/%s@operators"', 'operator_phone = "Local/%s@agents"')})
    expect_problem(d.check_dialplan(), r"site moscow .*no context \[agents\]")
    d, _ = broken({"asterisk/extensions.conf": sub("exten => _1XX,1,Dial(Local/op${EXTEN}@operators",
                                                   "exten => _1XXXXXXX,1,Dial(Local/op${EXTEN}@operators")})
    expect_problem(d.check_dialplan(), r"_1XXXXXXX can never be a transfer target")
    d, _ = broken({"asterisk/extensions.conf": sub("b(operator-autoanswer^s^1))\n same => n,Hangup()\n same => n(ring)",
                                                   "b(operator-auto-answer^s^1))\n same => n,Hangup()\n same => n(ring)")})
    expect_problem(d.check_dialplan(), r"no context \[operator-auto-answer\]")
    d, _ = broken({"asterisk/queues.conf": sub("[sales](queue-defaults)", "[sale](queue-defaults)")})
    expect_problem(d.check_dialplan(), r"queues.conf has no queue sales")
    d, _ = broken({"asterisk/pjsip.conf": sub("[op106-auth]", "[Op-106](operator-endpoint)\n\n[op106-auth]")})
    expect_problem(d.check_dialplan(), r"does not take operator Op-106")


def test_manager_conf_lets_the_agent_in(real, broken):
    assert checks.agent_actions(ROOT / "agent") >= {"Originate", "Redirect", "Hangup", "QueuePause",
                                                    "CoreShowChannels", "Ping", "Login"}
    assert real.check_manager() == []
    d, _ = broken({"asterisk/manager.conf": sub("write = system,reporting,originate,call,agent",
                                                "write = system,reporting,call,agent")})
    expect_problem(d.check_manager(), r"does not allow Originate")
    d, _ = broken({"asterisk/manager.conf": sub("read = all", "read = call")})
    expect_problem(d.check_manager(), r"misses \['agent', 'system'\]")
    d, _ = broken({"asterisk/manager.conf": sub("[callbus]", "[crm]")})
    expect_problem(d.check_manager(), r"no \[callbus\] user")
    d, _ = broken({"asterisk/manager.conf": sub("secret = @AMI_SECRET@", "secret = s3cret")})
    expect_problem(d.check_manager(), r"placeholder")
    d, _ = broken({"compose.yaml": sub("      - source: moscow_ami_secret\n        target: ami_secret\n"
                                       "        mode: 0o400             # read by start.sh as root\n",
                                       "      - source: tallinn_ami_secret\n        target: ami_secret\n"
                                       "        mode: 0o400             # read by start.sh as root\n")})
    expect_problem(d.check_manager(), r"site moscow: the agent reads .* must be the same secret")


def test_mirror_maker_uses_the_compose_clusters(real, broken):
    assert real.check_mirror_maker() == []
    d, _ = broken({"compose.yaml": sub("TALLINN_BOOTSTRAP: tallinn-kafka-wan:9094", "TALLINN_BOOTSTRAP: moscow-kafka-wan:9094")})
    expect_problem(d.check_mirror_maker(), r"cluster tallinn is moscow-kafka")
    d, _ = broken({"compose.yaml": sub("TALLINN_BOOTSTRAP: tallinn-kafka-wan:9094", "TALLINN_BOOTSTRAP: tallinn-kafka:9092")})
    expect_problem(d.check_mirror_maker(), r"MirrorMaker uses tallinn's LAN listener LAN")
    d, _ = broken({"compose.yaml": sub("networks: [centre-lan, wan-tallinn, wan-moscow]",
                                       "networks: [centre-lan, wan-tallinn, wan-moscow, tallinn-lan]")})
    expect_problem(d.check_mirror_maker(), r"reaches tallinn over its LAN")
    d, _ = broken({"compose.yaml": sub("CENTRAL_BOOTSTRAP: central-kafka:9092", "CENTRAL_BOOTSTRAP: central-kafka:19092")})
    expect_problem(d.check_mirror_maker(), r"advertises no listener central-kafka:19092")
    d, _ = broken({"mm2.properties": lambda t: re.sub(r"(?m)^(moscow->central\.topics=.*)\|results", r"\1", t)})
    expect_problem(d.check_mirror_maker(), r"moscow->central.topics .* misses callbus\.moscow\.results")
    d, _ = broken({"compose.yaml": sub('KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "1"',
                                       'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: "3"')})
    expect_problem(d.check_mirror_maker(), r"transaction log wants 3 replicas")


def packages_or_skip():
    """The library checks map files to packages with this machine's dpkg: only
    meaningful where the Dockerfile's Debian release is the one here."""
    if not shutil.which("dpkg"):
        pytest.skip("no dpkg: the library checks need a Debian machine")
    rel = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    codename = rel.get("VERSION_CODENAME", "").strip('"')
    bases = {s["base"] for s in checks.parse_dockerfile(COMPOSE / "Dockerfile") if s["base"].startswith("debian:")}
    if not bases or any(not b.split(":")[1].startswith(codename) for b in bases):
        pytest.skip(f"this machine is Debian {codename!r}, the Dockerfile uses {sorted(bases)}")
    return checks.PackageInfo(ROOT)


def test_dockerfile_builds_and_ships_what_compose_runs(real, broken):
    pk = packages_or_skip()
    flags = pk.link_packages()
    print("Makefile links:", ", ".join(f"{f} ({p})" for f, p in flags))
    assert real.check_dockerfile(pk) == []
    d, _ = broken({"Dockerfile": sub(" libjwt0 ", " ")})
    expect_problem(d.check_dockerfile(pk), r"ships callbus-gateway, which needs libjwt\.so\.\d+ from libjwt0")
    d, _ = broken({"Dockerfile": sub(" libwebsockets-dev ", " ")})
    expect_problem(d.check_dockerfile(pk), r"does not install libwebsockets-dev, which provides -lwebsockets")
    d, _ = broken({"Dockerfile": sub("/src/build/callbus-gateway ", "")})
    expect_problem(d.check_dockerfile(pk), r"runs callbus-gateway, which .* does not install")
    d, _ = broken({"Dockerfile": sub("COPY gateway gateway\n", "")})
    expect_problem(d.check_dockerfile(pk), r"runs make without the Makefile's sources in gateway/")
    d, _ = broken({"sites/moscow-gateway.conf": sub('www_dir = "/usr/share/callbus/www"', 'www_dir = "/usr/share/callbus/html"')})
    expect_problem(d.check_dockerfile(pk), r"service moscow-gateway: gateway.www_dir /usr/share/callbus/html is not where")
    d, _ = broken({"compose.yaml": sub("target: crm", "target: crn")})
    expect_problem(d.check_dockerfile(pk), r"build target crn is not a stage")
    d, _ = broken({"compose.yaml": sub('        uid: "10001"            # the callbus user of compose/Dockerfile\n'
                                       '        gid: "10001"\n        mode: 0o400\n', "")})
    expect_problem(d.check_dockerfile(pk), r"service tallinn-agent: secret tallinn_ami_secret should be uid 10001")


def test_dockerfile_follows_the_makefile_and_setup(real, tmp_path):
    """A library added to a link line, or a run-time plugin added to
    tools/setup.sh (as the gateway's libev loop does), is missing from the
    image until the Dockerfile gets it too."""
    packages_or_skip()
    repo = tmp_path / "repo"
    repo.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in ("Makefile", "tools", ".git"):
            (repo / entry.name).symlink_to(entry)
    (repo / "tools").mkdir()
    for entry in (ROOT / "tools").iterdir():
        if entry.name != "setup.sh":
            (repo / "tools" / entry.name).symlink_to(entry)
    mk = (ROOT / "Makefile").read_text()
    link = "$(BUILD)/callbus-gateway: $(BUILD)/gateway/main.o $(LIBGATEWAY) $(LIBCALLBUS)\n\t$(CC) $(ALL_CFLAGS) $^ -o $@ $(LDLIBS) $(GATEWAY_LIBS)"
    assert link in mk
    (repo / "Makefile").write_text(mk.replace(link, link + " -lcmocka"))
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert "    libssl-dev uthash-dev" in setup
    (repo / "tools" / "setup.sh").write_text(setup.replace("    libssl-dev uthash-dev", "    libssl-dev uthash-dev libwebsockets-evlib-uv"))
    d = checks.Deployment(real.p, COMPOSE, repo, build_dir())
    problems = d.check_dockerfile(checks.PackageInfo(repo))
    expect_problem(problems, r"stage build does not install libcmocka-dev, which provides -lcmocka")
    expect_problem(problems, r"stage runtime ships .* without libwebsockets-evlib-uv")


# ---------------------------------------------------------------- 4. the demo's token

def test_demo_token_opens_the_compose_gateway(real, procs, tmp_path, kafka_bootstrap):
    """tools/mint_token.py (callbus-demo-token in the crm container) signs a
    token the gateway accepts when configured as in compose: the site file,
    the HS256 key read from the compose secret file. Only the listen address,
    the broker and the topic prefix are changed to run here."""
    from callbus_harness import GwClient

    secrets = demo_secrets(real.p, "tallinn-gateway")
    conf = tmp_path / "tallinn-gateway.conf"
    text = (COMPOSE / "sites" / "tallinn-gateway.conf").read_text()
    for old, new in (('listen = "0.0.0.0:8080"', 'listen = "127.0.0.1:0"'),
                     ('www_dir = "/usr/share/callbus/www"', f'www_dir = "{ROOT / "gateway" / "www"}"'),
                     ('topic_prefix = "callbus"', f'topic_prefix = "t-compose-{os.getpid()}"')):
        assert old in text
        text = text.replace(old, new)
    conf.write_text(text)
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    for name, content in secrets.items():
        (sdir / name).write_text(content)
    ns = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--mount"]
    script = 'mount -t tmpfs tmpfs /run && mkdir /run/secrets && cp -R "$1"/. /run/secrets/ && shift && exec "$@"'
    gw = procs.start(ns + ["sh", "-c", script, "sh", str(sdir), str(build_path("callbus-gateway")),
                           "-c", str(conf), "-X", f"bootstrap.servers={kafka_bootstrap}"], name="gateway")
    url = gw.wait_for(r"gateway: listening on (http://[0-9.]+:\d+)", timeout=60, which="err").group(1)

    def mint(site, op, secret_file, *extra):
        r = subprocess.run([sys.executable, str(ROOT / "tools/mint_token.py"), "--secret-file", str(secret_file),
                            "--url", url, *extra, site, op], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        page = r.stdout.strip()
        assert page.startswith(url + "/#token="), page
        return page.split("#token=", 1)[1]

    # a secret file ending in a newline, as an editor leaves it: both sides strip it
    (tmp_path / "jwt_nl").write_text(secrets["jwt_secret"] + "\n")
    c = GwClient(url, mint("tallinn", "op101", tmp_path / "jwt_nl"))
    assert c.welcome["type"] == "welcome", c.welcome
    assert (c.welcome["operator_id"], c.welcome["site"], c.welcome["role"]) == ("op101", "tallinn", "operator")
    assert c.first["type"] == "snapshot", c.first
    c.close()
    c = GwClient(url, mint("tallinn", "sup1", sdir / "jwt_secret", "--role", "supervisor"))
    assert c.welcome["role"] == "supervisor", c.welcome
    c.close()
    # the gateway really checks: another secret, another site
    (tmp_path / "other").write_text("another-secret-of-at-least-32-bytes-long")
    bad = GwClient(url)
    bad.send({"type": "auth", "token": mint("tallinn", "op101", tmp_path / "other")})
    assert bad.close_code() == 4001
    bad = GwClient(url)
    bad.send({"type": "auth", "token": mint("moscow", "op101", sdir / "jwt_secret")})
    assert bad.close_code() == 4003


# ---------------------------------------------------------------- 5. Asterisk's entrypoint

def run_start_sh(asterisk_dir, secret, tmp_path):
    etc = tmp_path / "etc-asterisk"
    shutil.rmtree(etc, ignore_errors=True)
    etc.mkdir()
    (tmp_path / "ami_secret").write_text(secret)
    fake = tmp_path / "asterisk"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "asterisk.args"}\n')
    fake.chmod(0o755)
    r = subprocess.run(["sh", str(asterisk_dir / "start.sh")], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, AMI_SECRET_FILE=str(tmp_path / "ami_secret"),
                                ASTERISK_ETC=str(etc), ASTERISK_BIN=str(fake)))
    return r, etc


def test_asterisk_start_puts_the_secret_into_manager_conf(tmp_path):
    """compose/asterisk/start.sh, run with a fake asterisk: every config is in
    place, the secret (with characters sed would choke on) is in the agent's
    manager.conf section, and Asterisk is started in the foreground."""
    secret = r"demo/&\1 sécret"
    r, etc = run_start_sh(COMPOSE / "asterisk", secret + "\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in etc.iterdir()) == sorted(p.name for p in (COMPOSE / "asterisk").glob("*.conf"))
    import asterisk_conf
    user = asterisk_conf.section(asterisk_conf.load(etc / "manager.conf"), "callbus")
    assert user.get("secret") == secret
    assert "secret = @AMI_SECRET@" not in (etc / "manager.conf").read_text()
    assert (tmp_path / "asterisk.args").read_text().split()[:2] == ["-f", "-vvv"]
    # no secret, no start; no placeholder, no start
    r, _ = run_start_sh(COMPOSE / "asterisk", "", tmp_path)
    assert r.returncode != 0 and "missing or empty" in r.stderr
    copy = tmp_path / "asterisk-copy"
    shutil.copytree(COMPOSE / "asterisk", copy)
    (copy / "manager.conf").write_text((copy / "manager.conf").read_text().replace("@AMI_SECRET@", "s3cret"))
    r, _ = run_start_sh(copy, secret, tmp_path)
    assert r.returncode != 0 and "no secret = @AMI_SECRET@" in r.stderr


def test_hostnet_ports_are_outside_the_ephemeral_range():
    """The compose-run override's listeners start a minute after their ports
    are chosen: a port from the ephemeral range can meanwhile become some
    connection's source port and the service never listens (a CI failure)."""
    import hostnet
    lo, hi = hostnet.ephemeral_range()
    ports = [hostnet.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports), "free_port handed out a port twice"
    inside = [p for p in ports if lo <= p <= hi]
    assert not inside, f"ports in the ephemeral range {lo}-{hi}: {inside[:5]}"


def test_tests_benchmarks_and_compose_share_one_free_port():
    """One free_port (tests/ports.py) for the integration tests, the
    benchmarks and the compose run, so they all keep out of the ephemeral
    range and never hand a port out twice."""
    import conftest
    import hostnet
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    import bench
    assert conftest.free_port is hostnet.free_port is bench.free_port
