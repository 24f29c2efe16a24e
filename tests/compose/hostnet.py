"""hostnet.py -- compose/compose.yaml on one machine's loopback, with
network_mode: host and amisim in place of Asterisk: the override file the
real-deployment test (tests/integration/test_compose_run.py) runs compose with.

Where containers cannot have networks of their own (this project's machines:
no bridges, every test on loopback), each service shares the host's network
instead, so two services must not listen on the same port. HostNet writes,
into its directory, from the resolved production project (checks.Deployment):

  compose.override.yaml  for every service network_mode: host and no networks
                         or published ports; each Kafka listener, each AMI,
                         agent HTTP and gateway listener its own 127.0.0.1
                         port; each <site>-asterisk runs amisim from the
                         callbus image (as the callbus user, with the site's
                         AMI secret); file secrets (podman-compose mounts no
                         environment secret; the files are the callbus
                         user's, mode 0400, as compose's uid/gid/mode say)
  sites/, centre/        the compose configs with only their addresses changed
                         (and the operators' phones in amisim's [phones])
  mm2.properties         compose/mm2.properties + the given settings
                         (the crm's command can get extra arguments, the
                         Kafka image's services extra environment, too)
  secrets/               one random secret per compose secret

Every address comes from the production file: a name:port a program or
MirrorMaker is configured with is resolved to the broker listener, Asterisk
or port it reaches there (checks.Deployment.broker_for), then to that
listener's loopback port here. Each rewrite of a config must hit exactly
once, so a config that changes shape fails here rather than running half
rewritten.

    python3 tests/compose/hostnet.py PROJECT.json DIR
(PROJECT.json: tests/compose's composecheck output for compose/compose.yaml)
then
    podman-compose -f compose/compose.yaml -f DIR/compose.override.yaml up -d
"""

import json
import os
import re
import secrets
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import checks  # noqa: E402
import libconfig_reader  # noqa: E402
# The containers bind their ports a minute or more after they are chosen:
# ports.free_port keeps them out of the ephemeral range (see tests/ports.py).
from ports import ephemeral_range, free_port  # noqa: E402,F401

LOOPBACK = "127.0.0.1"
# amisim's dialplan: operators' phones are Local/<op>@phones (tools/amisim/c2c.c)
AMISIM_PHONES = "Local/%s@phones"
AMISIM_ARGS = ["--operators", "6", "--queues", "support", "--talk", "2-4"]


class Tagged:
    """A YAML value with a compose merge tag (!override, !reset)."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def _represent_tagged(dumper, t):
    if isinstance(t.value, dict):
        return dumper.represent_mapping(t.tag, t.value)
    if isinstance(t.value, list):
        return dumper.represent_sequence(t.tag, t.value)
    return dumper.represent_scalar(t.tag, "" if t.value is None else str(t.value))


yaml.SafeDumper.add_representer(Tagged, _represent_tagged)


def replace_once(text, pattern, new, where):
    out, n = re.subn(pattern, lambda _m: new, text)
    if n != 1:
        raise ValueError(f"{where}: /{pattern}/ matched {n} times, expected once")
    return out


class HostNet:
    def __init__(self, deployment, out_dir, port=free_port, mm2_settings=None, crm_args=(), kafka_env=None,
                 callbus_uid=10001):
        self.d = deployment
        self.out = Path(out_dir)
        self.port = port
        self.mm2_settings = dict(mm2_settings or {})
        self.crm_args = list(crm_args)
        self.kafka_env = dict(kafka_env or {})
        self.uid = callbus_uid
        self.listeners = {}   # kafka service -> {listener name: port}
        self.ami = {}         # asterisk service -> port
        self.http = {}        # agent or gateway service -> port
        self.overrides = {}   # service -> override

    # ------------------------------------------------------------ addresses

    def kafka_addr(self, bootstrap, from_svc):
        """A bootstrap list as seen from from_svc -> the same listeners here."""
        out = []
        for b in bootstrap.split(","):
            found, err = self.d.broker_for(b.strip(), from_svc)
            if err:
                raise ValueError(f"{from_svc}: {err}")
            out.append(f"{LOOPBACK}:{self.listeners[found[0]][found[1]]}")
        return ",".join(out)

    def bootstrap(self, svc):
        """(service, listener) -> host:port, for the test."""
        return lambda listener: f"{LOOPBACK}:{self.listeners[svc][listener]}"

    # ------------------------------------------------------------ services

    def _kafka(self, svc):
        env = checks._env(self.d.services[svc])
        ports = {}
        for item in env["KAFKA_LISTENERS"].split(","):
            ports[item.partition("://")[0]] = self.port()
        self.listeners[svc] = ports
        advertised = [item.partition("://")[0] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
        node = env["KAFKA_NODE_ID"]
        controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
        return {"environment": {
            **self.kafka_env,
            "KAFKA_LISTENERS": ",".join(f"{n}://{LOOPBACK}:{p}" for n, p in ports.items()),
            "KAFKA_ADVERTISED_LISTENERS": ",".join(f"{n}://{LOOPBACK}:{ports[n]}" for n in advertised),
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"{node}@{LOOPBACK}:{ports[controller]}",
        }}

    def _volumes(self, svc, replace):
        """The service's volumes with bind sources replaced ({target: new source})."""
        out = []
        for v in self.d.services[svc].get("volumes") or []:
            src = replace.get(v["target"], v["source"])
            out.append(f"{src}:{v['target']}" + (":ro" if v.get("read_only") else ""))
        return Tagged("!override", out)

    def _config(self, svc, argv, rewrite):
        path, err = self.d.config_path(svc, argv)
        if err:
            raise ValueError(err)
        text = path.read_text()
        for pattern, new in rewrite(libconfig_reader.load(path)):
            text = replace_once(text, pattern, new, path.name)
        dest = self.out / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
        inside = argv[argv.index("-c") + 1]
        return {"volumes": self._volumes(svc, {inside: str(dest)})}

    def _agent(self, svc, argv):
        self.http[svc] = self.port()

        def rewrite(cfg):
            ast = [s for s, _ in self.d.resolve(cfg["agent"]["ami"]["host"], svc)][0]
            bs = dict(p.split("=", 1) for p in cfg["kafka"])["bootstrap.servers"]
            return [(r'bootstrap\.servers=' + re.escape(bs), "bootstrap.servers=" + self.kafka_addr(bs, svc)),
                    (r'host = "' + re.escape(cfg["agent"]["ami"]["host"]) + '";', f'host = "{LOOPBACK}";'),
                    (r'\bport = \d+;', f"port = {self.ami[ast]};"),
                    (r'listen = "[^"]*";', f'listen = "{LOOPBACK}:{self.http[svc]}";'),
                    (r'operator_phone = "[^"]*";', f'operator_phone = "{AMISIM_PHONES}";')]
        return self._config(svc, argv, rewrite)

    def _gateway(self, svc, argv):
        self.http[svc] = self.port()

        def rewrite(cfg):
            bs = dict(p.split("=", 1) for p in cfg["kafka"])["bootstrap.servers"]
            return [(r'bootstrap\.servers=' + re.escape(bs), "bootstrap.servers=" + self.kafka_addr(bs, svc)),
                    (r'\blisten = "[^"]*";', f'listen = "{LOOPBACK}:{self.http[svc]}";')]
        return self._config(svc, argv, rewrite)

    def _amisim(self, svc, image, username):
        self.ami[svc] = self.port()
        script = (f'exec amisim --listen {LOOPBACK}:{self.ami[svc]} --user {username} '
                  '--secret "$(cat /run/secrets/ami_secret)" "$@"')
        return {"image": image,
                "entrypoint": Tagged("!override", ["/bin/sh", "-c", script, "amisim"]),
                "command": Tagged("!override", list(AMISIM_ARGS)),
                "volumes": Tagged("!reset", [])}

    def _mirror_maker(self, svc):
        env = checks._env(self.d.services[svc])
        new_env = {k: self.kafka_addr(v, svc) for k, v in env.items() if k.endswith("_BOOTSTRAP")}
        argv = checks._cmd(self.d.services[svc])
        inside = next(a for a in argv if a.endswith(".properties"))
        src = self.d.container_file(svc, inside)
        settings = dict(self.mm2_settings)
        settings.setdefault("listeners", f"http://{LOOPBACK}:{self.port()}")
        dest = self.out / "mm2.properties"
        dest.write_text(src.read_text() + "\n# ---- tests/compose/hostnet.py\n"
                        + "".join(f"{k}={v}\n" for k, v in settings.items()))
        return {"environment": {**self.kafka_env, **new_env}, "volumes": self._volumes(svc, {inside: str(dest)})}

    def _crm(self, svc):
        argv = checks._cmd(self.d.services[svc])
        i = argv.index("-b") + 1
        argv[i] = self.kafka_addr(argv[i], svc)
        argv += self.crm_args
        replace = {}
        for v in self.d.services[svc].get("volumes") or []:
            src = Path(v["source"])
            if v.get("type") == "bind" and src.is_dir():
                dest = self.out / src.name
                dest.mkdir(parents=True, exist_ok=True)
                for conf in sorted(src.glob("*.conf")):
                    bs = dict(p.split("=", 1) for p in libconfig_reader.load(conf)["kafka"])["bootstrap.servers"]
                    (dest / conf.name).write_text(replace_once(
                        conf.read_text(), r'bootstrap\.servers=' + re.escape(bs),
                        "bootstrap.servers=" + self.kafka_addr(bs, svc), conf.name))
                replace[v["target"]] = str(dest)
        return {"command": Tagged("!override", argv), "volumes": self._volumes(svc, replace)}

    # ------------------------------------------------------------ the file

    def _secrets(self):
        sdir = self.out / "secrets"
        sdir.mkdir(parents=True, exist_ok=True)
        out = {}
        for name in self.d.p.get("secrets") or {}:
            f = sdir / name
            f.write_text(secrets.token_urlsafe(32))
            if os.geteuid() == 0:
                os.chown(f, self.uid, self.uid)
            f.chmod(0o400 if os.geteuid() == 0 else 0o444)
            out[name] = Tagged("!override", {"file": str(f)})
        return out

    def write(self):
        self.out.mkdir(parents=True, exist_ok=True)
        services = {}
        for svc in self.d.kafka_services():
            services[svc] = self._kafka(svc)
        agents = self.d.running("callbus-agent")
        image = self.d.services[agents[0][0]]["image"]
        for svc, argv in agents:
            cfg = libconfig_reader.load(self.d.config_path(svc, argv)[0])
            for ast, _ in self.d.resolve(cfg["agent"]["ami"]["host"], svc):
                services[ast] = self._amisim(ast, image, cfg["agent"]["ami"]["username"])
            services[svc] = self._agent(svc, argv)
        for svc, argv in self.d.running("callbus-gateway"):
            services[svc] = self._gateway(svc, argv)
        mm = [n for n, s in self.d.services.items() if checks._cmd(s)[:1] == ["mirror-maker"]]
        for svc in mm:
            services[svc] = self._mirror_maker(svc)
        services["crm"] = self._crm("crm")
        missing = set(self.d.services) - set(services)
        if missing:
            raise ValueError(f"no host-network form for services {sorted(missing)}")
        raw = yaml.safe_load((self.d.compose_dir / "compose.yaml").read_text())["services"]
        for name, svc in services.items():
            svc.update({"network_mode": "host", "networks": Tagged("!reset", {}),
                        "ports": Tagged("!reset", [])})
            # A tag on a key the production service does not have is left
            # in place by podman-compose 1.6's merge: say it plainly there.
            for key, value in list(svc.items()):
                if isinstance(value, Tagged) and key not in raw[name]:
                    if value.tag == "!reset":
                        del svc[key]
                    else:
                        svc[key] = value.value
        doc = {"services": services, "secrets": self._secrets()}
        path = self.out / "compose.override.yaml"
        path.write_text("# written by tests/compose/hostnet.py: compose/compose.yaml on this host's "
                        "loopback, amisim for Asterisk\n" + yaml.safe_dump(doc, sort_keys=False, width=200))
        return path

    def addresses(self):
        """What the test connects to: {service: {name: host:port}}."""
        out = {svc: {n: f"{LOOPBACK}:{p}" for n, p in ports.items()} for svc, ports in self.listeners.items()}
        for svc, p in self.ami.items():
            out[svc] = {"ami": f"{LOOPBACK}:{p}"}
        for svc, p in self.http.items():
            out[svc] = {"http": f"{LOOPBACK}:{p}"}
        return out


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    d = checks.Deployment(json.loads(Path(argv[1]).read_text()), repo / "compose", repo)
    h = HostNet(d, Path(argv[2]).resolve())
    print(h.write())
    print(json.dumps(h.addresses(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
