"""checks.py -- is compose/ consistent with the code it deploys?

Deployment(project, compose_dir, repo) takes the project composecheck printed
(compose-go's resolved model of compose/compose.yaml) and reads the files it
mounts; each check_* method returns a list of problems (empty = consistent):

  check_images        the Kafka image is built here from the pinned test
                      release's jars and tagged with it; Asterisk an LTS
  check_site_configs  each agent/gateway's config: its site, its LAN only, the
                      Kafka and Asterisk it names exist on that LAN with those
                      listeners and ports, secret files are the mounted secrets,
                      published ports are the ones the programs listen on; a
                      site's agent and gateway agree on prefix and cluster
  check_centre        the CLI configs at the centre: central Kafka, same prefix
  check_dialplan      every context the agent configs name exists and takes the
                      extensions the commands dial; the dialplan's own jumps land
  check_manager       manager.conf has the agent's user, its secret comes from
                      the agent's secret, and the write classes its actions need
  check_mirror_maker  MM2's clusters are the compose brokers (sites over the
                      WAN), its topic lists carry exactly each site's topics
  check_dockerfile    the image builds and ships the programs compose runs
                      (and the operator page where www_dir says) with the
                      libraries the Makefile links (-dev to build, runtime
                      packages of what the programs need, and the run-time
                      plugins tools/setup.sh installs); secrets belong to the
                      image's user alone

Used by tests/integration/test_compose.py (which also shows each check
failing on a broken copy); runnable by hand:
  python3 tests/compose/checks.py PROJECT.json
"""

import json
import re
import sys
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asterisk_conf  # noqa: E402
import libconfig_reader  # noqa: E402
from debian_packages import PackageInfo  # noqa: E402,F401
from dockerfile import parse_dockerfile  # noqa: E402

SITE_TOPICS_UP = ("ami", "calls", "operators", "results", "status")
SITE_TOPICS_DOWN = ("commands",)

# The AMI actions callbus-agent sends and the manager.conf write classes that
# allow each (any one of them suffices): Asterisk's registration of each
# action in main/manager.c and apps/app_queue.c, as summed up in
# docs/operations.md. An action missing here is itself a problem: someone
# must look its class up.
AMI_WRITE_CLASSES = {
    "Login": set(), "Logoff": set(), "Ping": set(), "QueueStatus": set(),
    "CoreShowChannels": {"system", "reporting"},
    "CoreSettings": {"system", "reporting"},
    "Originate": {"originate"},
    "Hangup": {"system", "call"},
    "Redirect": {"call"},
    "QueuePause": {"agent"}, "QueueAdd": {"agent"}, "QueueRemove": {"agent"},
}
# The event classes the call and operator model reads.
AMI_READ_CLASSES = {"call", "agent", "system"}

# Numbers a click-to-call may carry (those the site's number_patterns allow
# must be dialable in every allowed context).
SAMPLE_NUMBERS = ("5552001", "+3725552001", "88005553535", "+74955550100")


def _cmd(svc):
    cmd = list(svc.get("entrypoint") or []) + list(svc.get("command") or [])
    return cmd


def _env(svc):
    return {k: ("" if v is None else str(v)) for k, v in (svc.get("environment") or {}).items()}


def _hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


class Deployment:
    def __init__(self, project, compose_dir, repo, build_dir=None):
        self.p = project
        self.services = project.get("services", {})
        self.compose_dir = Path(compose_dir)
        self.repo = Path(repo)
        self.build_dir = Path(build_dir) if build_dir else self.repo / "build"

    # ------------------------------------------------------------ model helpers

    def container_file(self, svc_name, path):
        """Host path of `path` inside the service, through its bind mounts."""
        best = None
        for v in self.services[svc_name].get("volumes") or []:
            if v.get("type") != "bind":
                continue
            t = PurePosixPath(v["target"])
            pp = PurePosixPath(path)
            if pp == t or t in pp.parents:
                if best is None or len(str(t)) > len(str(best[0])):
                    best = (t, Path(v["source"]))
        if best is None:
            return None
        rel = PurePosixPath(path).relative_to(best[0])
        return best[1] / str(rel) if str(rel) != "." else best[1]

    def running(self, program):
        """[(service, its argv)] of the services whose command runs program."""
        out = []
        for name, svc in sorted(self.services.items()):
            cmd = _cmd(svc)
            if cmd and PurePosixPath(cmd[0]).name == program:
                out.append((name, cmd))
        return out

    def config_path(self, svc_name, argv):
        if "-c" not in argv or argv.index("-c") + 1 >= len(argv):
            return None, f"service {svc_name}: no -c CONFIG in its command"
        inside = argv[argv.index("-c") + 1]
        host = self.container_file(svc_name, inside)
        if host is None or not host.is_file():
            return None, f"service {svc_name}: config {inside} is not a file bind-mounted from compose/"
        return host, None

    def networks(self, svc_name):
        return set((self.services[svc_name].get("networks") or {}).keys())

    def names_on(self, svc_name, net):
        names = {svc_name}
        cfg = (self.services[svc_name].get("networks") or {}).get(net) or {}
        names.update(cfg.get("aliases") or [])
        return names

    def resolve(self, host, from_svc):
        """[(service, network)] that `host` reaches from from_svc."""
        out = []
        for name in self.services:
            for net in self.networks(from_svc) & self.networks(name):
                if host in self.names_on(name, net):
                    out.append((name, net))
        return out

    def is_kafka_image(self, svc):
        """The service runs the Kafka image of compose/kafka/Dockerfile."""
        ctx = (self.services[svc].get("build") or {}).get("context", "")
        return bool(ctx) and Path(ctx).resolve() == (self.compose_dir / "kafka").resolve()

    def kafka_services(self):
        return sorted(n for n, s in self.services.items()
                      if self.is_kafka_image(n) and "broker" in _env(s).get("KAFKA_PROCESS_ROLES", ""))

    def advertised(self, kafka):
        """{listener name: (host, port)} a broker advertises, only for
        listeners it also binds."""
        env = _env(self.services[kafka])
        bound = {}
        for item in filter(None, env.get("KAFKA_LISTENERS", "").split(",")):
            name, _, addr = item.partition("://")
            bound[name] = _hostport(addr)[1]
        out = {}
        for item in filter(None, env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")):
            name, _, addr = item.partition("://")
            host, port = _hostport(addr)
            if bound.get(name) == port:
                out[name] = (host, port)
        return out

    def broker_for(self, bootstrap, from_svc):
        """(kafka service, listener, network) a bootstrap address reaches from
        from_svc, or (None, reason)."""
        host, port = _hostport(bootstrap)
        for svc, net in self.resolve(host, from_svc):
            if svc not in self.kafka_services():
                continue
            for lname, addr in self.advertised(svc).items():
                if addr == (host, port):
                    return (svc, lname, net), None
            return None, (f"{bootstrap}: {svc} advertises no listener {host}:{port} "
                          f"(it advertises {sorted(self.advertised(svc).values())})")
        return None, f"{bootstrap}: no Kafka service is reachable as {host} from {from_svc}"

    def secret_files(self, svc_name):
        """{/run/secrets/<target>: secret source} of a service."""
        out = {}
        for s in self.services[svc_name].get("secrets") or []:
            target = s.get("target") or s["source"]
            if not target.startswith("/"):
                target = "/run/secrets/" + target
            out[target] = s["source"]
        return out

    def published(self, svc_name):
        """{container port: published port}"""
        return {int(p["target"]): p.get("published") for p in self.services[svc_name].get("ports") or []}

    def site_configs(self):
        """{site id: {"config": dict, "path": Path, "agent": svc, "gateway": svc}}"""
        sites = {}
        for prog, role in (("callbus-agent", "agent"), ("callbus-gateway", "gateway")):
            for svc, argv in self.running(prog):
                path, err = self.config_path(svc, argv)
                if err:
                    continue
                cfg = libconfig_reader.load(path)
                site = cfg.get("site", "site1")
                entry = sites.setdefault(site, {"config": cfg, "path": path})
                entry[role] = svc
        return sites

    # ------------------------------------------------------------------ checks

    def check_images(self):
        problems = []
        pom = (self.repo / "tests/kafka/pom.xml").read_text()
        m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
        pinned = m.group(1) if m else None
        for name, svc in sorted(self.services.items()):
            image = str(svc.get("image", ""))
            if "kafka" in image.split(":")[0] and not self.is_kafka_image(name):
                problems.append(f"service {name}: image {image} is not built from compose/kafka")
            if self.is_kafka_image(name):
                tag = image.partition(":")[2]
                if tag != pinned:
                    problems.append(f"service {name}: image {image}, but tests/kafka/pom.xml pins Kafka {pinned}")
                libs = (svc["build"].get("additional_contexts") or {}).get("kafka-libs", "")
                if not libs.rstrip("/").endswith(f"/kafka-{pinned}/libs"):
                    problems.append(f"service {name}: build context kafka-libs {libs!r} is not the jars of "
                                    f"Kafka {pinned} (tests/kafka/kafka.sh libs)")
            if "asterisk" in image.split(":")[0]:
                tag = image.partition(":")[2]
                if not re.match(r"^(20|22)\.", tag):
                    problems.append(f"service {name}: image {image} is not an Asterisk 20/22 LTS release")
        return problems

    def check_site_configs(self):
        problems = []
        for prog, role in (("callbus-agent", "agent"), ("callbus-gateway", "gateway")):
            ran = self.running(prog)
            if not ran:
                problems.append(f"no service runs {prog}")
            for svc, argv in ran:
                path, err = self.config_path(svc, argv)
                if err:
                    problems.append(err)
                    continue
                cfg = libconfig_reader.load(path)
                problems += self._check_site_service(svc, role, cfg, path)
        sites = self.site_configs()
        for site, e in sorted(sites.items()):
            for role in ("agent", "gateway"):
                if role not in e:
                    problems.append(f"site {site}: no {role} service")
            if "agent" in e and "gateway" in e:
                # one site, so one topic prefix and one cluster for both
                a_path, _ = self.config_path(e["agent"], _cmd(self.services[e["agent"]]))
                g_path, _ = self.config_path(e["gateway"], _cmd(self.services[e["gateway"]]))
                a, g = libconfig_reader.load(a_path), libconfig_reader.load(g_path)
                for key in ("topic_prefix", "kafka"):
                    if a.get(key, "callbus") != g.get(key, "callbus"):
                        problems.append(f"site {site}: {g_path.name} has {key} {g.get(key, 'callbus')}, "
                                        f"{a_path.name} {a.get(key, 'callbus')}")
        if len(sites) < 2:
            problems.append(f"compose runs {len(sites)} site(s) {sorted(sites)}: two are expected")
        return problems

    def _check_site_service(self, svc, role, cfg, path):
        problems = []
        where = f"service {svc} ({path.name})"
        site = cfg.get("site", "site1")
        if not svc.startswith(site + "-"):
            problems.append(f"{where}: runs site {site!r}, but the service is not named {site}-*")
        lan = f"{site}-lan"
        if self.networks(svc) != {lan}:
            problems.append(f"{where}: networks {sorted(self.networks(svc))}: a site service belongs "
                            f"on its LAN {lan} only (never the WAN)")
        props = dict(p.split("=", 1) for p in cfg.get("kafka", []) if "=" in p)
        bootstrap = props.get("bootstrap.servers")
        if not bootstrap:
            problems.append(f"{where}: no bootstrap.servers in kafka")
        else:
            for b in bootstrap.split(","):
                found, err = self.broker_for(b.strip(), svc)
                if err:
                    problems.append(f"{where}: {err}")
                elif found[0] != f"{site}-kafka" or found[2] != lan:
                    problems.append(f"{where}: {b} reaches {found[0]} over {found[2]}, "
                                    f"not the site's own {site}-kafka over {lan}")
        secrets = self.secret_files(svc)
        if role == "agent":
            host = libconfig_reader.get(cfg, "agent.ami.host", "127.0.0.1")
            port = libconfig_reader.get(cfg, "agent.ami.port", 5038)
            targets = [s for s, _ in self.resolve(host, svc)]
            if f"{site}-asterisk" not in targets:
                problems.append(f"{where}: agent.ami.host {host} does not reach {site}-asterisk on {lan}")
            else:
                mgr = self._manager_conf(f"{site}-asterisk")
                if mgr is not None:
                    general = asterisk_conf.section(mgr, "general")
                    mport = int(general.get("port", "5038")) if general else 5038
                    if mport != port:
                        problems.append(f"{where}: agent.ami.port {port}, but manager.conf listens on {mport}")
            sf = libconfig_reader.get(cfg, "agent.ami.secret_file")
            if not sf:
                problems.append(f"{where}: agent.ami.secret_file unset (the AMI secret must come from a compose secret)")
            elif sf not in secrets:
                problems.append(f"{where}: agent.ami.secret_file {sf} is not a secret compose mounts "
                                f"in {svc} ({sorted(secrets) or 'none'})")
            listen = libconfig_reader.get(cfg, "agent.http.listen", "")
            if listen and _hostport(listen)[1] not in self.published(svc):
                problems.append(f"{where}: agent.http.listen {listen} is not a published port "
                                f"({sorted(self.published(svc))})")
        else:
            listen = libconfig_reader.get(cfg, "gateway.listen", "0.0.0.0:8080")
            host, port = _hostport(listen)
            if host not in ("0.0.0.0", "::", ""):
                problems.append(f"{where}: gateway.listen {listen} is not reachable from outside the container")
            if port not in self.published(svc):
                problems.append(f"{where}: gateway.listen port {port} is not published "
                                f"({sorted(self.published(svc))})")
            kf = libconfig_reader.get(cfg, "gateway.jwt_key_file")
            if libconfig_reader.get(cfg, "gateway.jwt_secret"):
                problems.append(f"{where}: gateway.jwt_secret is in the file: use jwt_key_file with a compose secret")
            if not kf or kf not in secrets:
                problems.append(f"{where}: gateway.jwt_key_file {kf} is not a secret compose mounts "
                                f"in {svc} ({sorted(secrets) or 'none'})")
        return problems

    def _manager_conf(self, asterisk_svc):
        d = self._asterisk_dir(asterisk_svc)
        if d is None or not (d / "manager.conf").is_file():
            return None
        return asterisk_conf.load(d / "manager.conf")

    def _asterisk_dir(self, asterisk_svc):
        """Host dir of the Asterisk configs a service starts from (the dir
        holding the script its entrypoint runs)."""
        svc = self.services.get(asterisk_svc)
        if not svc:
            return None
        for arg in _cmd(svc):
            if arg.endswith(".sh"):
                host = self.container_file(asterisk_svc, arg)
                if host and host.is_file():
                    return host.parent
        return None

    def check_centre(self):
        problems = []
        sites = self.site_configs()
        kafkas = self.kafka_services()
        central = [k for k in kafkas if not any(k == f"{s}-kafka" for s in sites)]
        if len(central) != 1:
            return [f"expected one central Kafka besides the sites', found {central}"]
        central = central[0]
        crm = [n for n, s in self.services.items() if any("crm" in PurePosixPath(a).name for a in _cmd(s))]
        if not crm:
            return ["no service runs the CRM (tools/crm/crm.py)"]
        crm = crm[0]
        if self.networks(crm) & {f"{s}-lan" for s in sites}:
            problems.append(f"service {crm}: the CRM is on a site LAN: it must reach sites only through Kafka")
        argv = _cmd(self.services[crm])

        def opt(*names):
            for n in names:
                if n in argv and argv.index(n) + 1 < len(argv):
                    return argv[argv.index(n) + 1]
            return None
        bs = opt("-b", "--bootstrap")
        found, err = self.broker_for(bs or "", crm) if bs else (None, "no -b/--bootstrap")
        if err:
            problems.append(f"service {crm}: crm.py {err}")
        elif found[0] != central:
            problems.append(f"service {crm}: crm.py reads {found[0]}, not the central cluster {central}")
        prefixes = {e["config"].get("topic_prefix", "callbus") for e in sites.values()}
        if {opt("--prefix") or "callbus"} != prefixes:
            problems.append(f"service {crm}: crm.py --prefix {opt('--prefix') or 'callbus'}, the sites use {sorted(prefixes)}")
        listed = opt("--sites")
        if listed is not None and set(listed.split(",")) != set(sites):
            problems.append(f"service {crm}: crm.py --sites {listed}, compose runs {sorted(sites)}")
        seen = set()
        for v in self.services[crm].get("volumes") or []:
            if v.get("type") != "bind" or not Path(v["source"]).is_dir():
                continue
            for f in sorted(Path(v["source"]).glob("*.conf")):
                cfg = libconfig_reader.load(f)
                site = cfg.get("site")
                seen.add(site)
                where = f"{f.relative_to(self.compose_dir.parent)}"
                if site not in sites:
                    problems.append(f"{where}: site {site!r} is not a compose site ({sorted(sites)})")
                    continue
                if cfg.get("topic_prefix", "callbus") != sites[site]["config"].get("topic_prefix", "callbus"):
                    problems.append(f"{where}: topic_prefix differs from the site's own config")
                props = dict(p.split("=", 1) for p in cfg.get("kafka", []) if "=" in p)
                found, err = self.broker_for(props.get("bootstrap.servers", ""), crm)
                if err:
                    problems.append(f"{where}: {err}")
                elif found[0] != central:
                    problems.append(f"{where}: reaches {found[0]}, not the central cluster {central}")
        for site in sorted(set(sites) - seen):
            problems.append(f"the CRM has no CLI config for site {site}")
        return problems

    def check_dialplan(self):
        problems = []
        sites = self.site_configs()
        for site, e in sorted(sites.items()):
            d = self._asterisk_dir(f"{site}-asterisk")
            if d is None:
                problems.append(f"site {site}: no Asterisk config dir (entrypoint script) for {site}-asterisk")
                continue
            plan = asterisk_conf.dialplan(asterisk_conf.load(d / "extensions.conf"))
            pjsip = asterisk_conf.load(d / "pjsip.conf")
            ops = [s.name for s in pjsip if not s.is_template and s.get("type") == "endpoint"]
            cfg = e["config"]
            g = lambda k, dflt: libconfig_reader.get(cfg, "commands." + k, dflt)  # noqa: E731
            where = f"site {site} ({e['path'].name} vs extensions.conf)"
            if not ops:
                problems.append(f"site {site}: pjsip.conf defines no operator endpoints")
            phone = g("operator_phone", "PJSIP/%s")
            m = re.match(r"^Local/%s@([^/]+)$", phone)
            if m:
                ctx = plan.get(m.group(1))
                if ctx is None:
                    problems.append(f"{where}: operator_phone {phone}: no context [{m.group(1)}]")
                else:
                    for op in ops:
                        if not asterisk_conf.matches(ctx, op):
                            problems.append(f"{where}: [{ctx.name}] does not take operator {op}")
            elif phone.startswith("PJSIP/%s"):
                pass
            else:
                problems.append(f"{where}: operator_phone {phone}: neither PJSIP/%s nor Local/%s@<context>")
            allowed = g("allowed_contexts", ["c2c-outbound"])
            orig = g("originate_context", "c2c-outbound")
            if orig not in allowed:
                problems.append(f"{where}: originate_context {orig} is not in allowed_contexts {allowed}")
            numbers = [n for n in SAMPLE_NUMBERS
                       if any(re.search(p, n)  # regexec: unanchored unless the pattern anchors
                              for p in g("number_patterns", [r"^\+?[0-9]{3,15}$"]))]
            if not numbers:
                problems.append(f"{where}: number_patterns allow none of {SAMPLE_NUMBERS}: "
                                "add a sample this check can dial")
            for c in sorted(set(allowed) | {orig}):
                ctx = plan.get(c)
                if ctx is None:
                    problems.append(f"{where}: originate context [{c}] is missing")
                    continue
                for n in numbers:
                    if not asterisk_conf.matches(ctx, n):
                        problems.append(f"{where}: [{c}] cannot dial {n}, which number_patterns allow")
            ans = g("answer_context", "answer")
            ctx = plan.get(ans)
            if ctx is None:
                problems.append(f"{where}: answer_context [{ans}] is missing")
            else:
                for op in ops:
                    if not asterisk_conf.matches(ctx, op):
                        problems.append(f"{where}: [{ans}] does not take operator {op} (answer redirects to <operator>@{ans})")
            tr = g("transfer_context", "transfer")
            ctx = plan.get(tr)
            if ctx is None:
                problems.append(f"{where}: transfer_context [{tr}] is missing")
            elif not ctx.extens:
                problems.append(f"{where}: [{tr}] has no extensions")
            else:
                pats = g("transfer_patterns", [r"^[0-9]{2,6}$"])
                for ex in ctx.extens:
                    sample = asterisk_conf.example(ex)
                    if not any(re.search(p, sample) for p in pats):
                        problems.append(f"{where}: [{tr}] extension {ex} can never be a transfer target "
                                        f"(transfer_patterns {pats})")
            for ep in (s for s in pjsip if not s.is_template and s.get("type") == "endpoint"):
                if ep.get("context") not in plan:
                    problems.append(f"site {site}: pjsip endpoint {ep.name} has context {ep.get('context')}, "
                                    "which the dialplan lacks")
            queues = asterisk_conf.load(d / "queues.conf")
            problems += [f"site {site}: {p}" for p in _dialplan_jumps(plan, queues)]
        return problems

    def check_manager(self):
        problems = []
        actions = agent_actions(self.repo / "agent")
        for site, e in sorted(self.site_configs().items()):
            if "agent" not in e:
                continue
            cfg = e["config"]
            d = self._asterisk_dir(f"{site}-asterisk")
            if d is None:
                problems.append(f"site {site}: no Asterisk config dir for {site}-asterisk")
                continue
            user = libconfig_reader.get(cfg, "agent.ami.username", "callbus")
            sec = asterisk_conf.section(asterisk_conf.load(d / "manager.conf"), user)
            where = f"site {site}: manager.conf"
            if sec is None:
                problems.append(f"{where}: no [{user}] user (agent.ami.username)")
                continue
            general = asterisk_conf.section(asterisk_conf.load(d / "manager.conf"), "general")
            if not general or general.get("enabled", "no").lower() not in ("yes", "true", "1", "on"):
                problems.append(f"{where}: AMI is not enabled in [general]")
            write = {c.strip().lower() for c in sec.get("write", "").split(",") if c.strip()}
            read = {c.strip().lower() for c in sec.get("read", "").split(",") if c.strip()}
            for action in sorted(actions):
                need = AMI_WRITE_CLASSES.get(action)
                if need is None:
                    problems.append(f"{where}: the agent sends {action}, whose AMI class this check does not know")
                elif need and "all" not in write and not (need & write):
                    problems.append(f"{where}: [{user}] write = {sec.get('write', '')} does not allow {action} "
                                    f"(needs one of {sorted(need)})")
            if "all" not in read and not AMI_READ_CLASSES <= read:
                problems.append(f"{where}: [{user}] read = {sec.get('read', '')} misses "
                                f"{sorted(AMI_READ_CLASSES - read)} events the call model reads")
            # The secret: a placeholder here, filled at start from the same
            # compose secret the agent reads.
            if sec.get("secret") != "@AMI_SECRET@":
                problems.append(f"{where}: [{user}] secret must be the @AMI_SECRET@ placeholder (no committed secrets)")
            start = d / "start.sh"
            sf = libconfig_reader.get(cfg, "agent.ami.secret_file", "")
            if not start.is_file() or sf not in start.read_text():
                problems.append(f"site {site}: start.sh does not fill manager.conf from {sf or 'the agent secret'}")
            agent_src = self.secret_files(e["agent"]).get(sf)
            ast_src = self.secret_files(f"{site}-asterisk").get(sf)
            if agent_src is None or agent_src != ast_src:
                problems.append(f"site {site}: the agent reads {sf} from secret {agent_src}, "
                                f"Asterisk from {ast_src}: they must be the same secret")
        return problems

    def check_mirror_maker(self):
        problems = []
        ran = [(n, _cmd(s)) for n, s in sorted(self.services.items())
               if self.is_kafka_image(n) and _cmd(s)[:1] == ["mirror-maker"]]
        if len(ran) != 1:
            return [f"expected one MirrorMaker 2 service (command: mirror-maker FILE), found {[n for n, _ in ran]}"]
        mm, argv = ran[0]
        props_in = next((a for a in argv[1:] if a.endswith(".properties")), None)
        host = self.container_file(mm, props_in) if props_in else None
        if host is None or not host.is_file():
            return [f"service {mm}: its properties file {props_in} is not mounted from compose/"]
        props = read_properties(host)
        env = _env(self.services[mm])
        sites = self.site_configs()
        clusters = [c.strip() for c in props.get("clusters", "").split(",") if c.strip()]
        where = f"{host.name}"

        def resolve(v):
            def sub(m):
                if m.group(1) not in env:
                    problems.append(f"{where}: ${{env:{m.group(1)}}} is not in {mm}'s environment")
                return env.get(m.group(1), "")
            return re.sub(r"\$\{env:([^}]+)\}", sub, v)

        if "${env:" in "".join(props.values()) and "env" not in props.get("config.providers", ""):
            problems.append(f"{where}: uses ${{env:...}} without config.providers=env")
        brokers = {}
        for c in clusters:
            bs = resolve(props.get(f"{c}.bootstrap.servers", ""))
            if not bs:
                problems.append(f"{where}: cluster {c} has no bootstrap.servers")
                continue
            found, err = self.broker_for(bs.split(",")[0].strip(), mm)
            if err:
                problems.append(f"{where}: cluster {c}: {err}")
                continue
            brokers[c] = found
        for site, e in sorted(sites.items()):
            prefix = e["config"].get("topic_prefix", "callbus")
            if site not in brokers:
                problems.append(f"{where}: site {site} is not one of MirrorMaker's clusters {clusters}")
                continue
            svc, _, net = brokers[site]
            if svc != f"{site}-kafka":
                problems.append(f"{where}: cluster {site} is {svc}, not the site's {site}-kafka")
            if net == f"{site}-lan" or f"{site}-lan" in self.networks(mm):
                problems.append(f"{where}: MirrorMaker reaches {site} over its LAN: it must go over the WAN")
            # The site's own programs and MirrorMaker use different listeners,
            # so the WAN side can be cut, secured or tuned on its own.
            props_site = dict(p.split("=", 1) for p in e["config"].get("kafka", []) if "=" in p)
            lan, _ = self.broker_for(props_site.get("bootstrap.servers", "").split(",")[0].strip(),
                                     e.get("agent") or e.get("gateway"))
            if lan and lan[1] == brokers[site][1]:
                problems.append(f"{where}: MirrorMaker uses {site}'s LAN listener {lan[1]}, not a WAN listener")
            central = [c for c in brokers if c not in sites]
            if len(central) != 1:
                problems.append(f"{where}: expected one central cluster besides the sites, found {central}")
                continue
            central = central[0]
            for kinds, src, dst in ((SITE_TOPICS_UP, site, central), (SITE_TOPICS_DOWN, central, site)):
                flow = f"{src}->{dst}"
                if props.get(f"{flow}.enabled", "false").lower() != "true":
                    problems.append(f"{where}: flow {flow} is not enabled")
                    continue
                rx = props.get(f"{flow}.topics", "")
                for kind in SITE_TOPICS_UP + SITE_TOPICS_DOWN:
                    topic = f"{prefix}.{site}.{kind}"
                    hit = re.fullmatch(rx, topic) is not None
                    if hit != (kind in kinds):
                        problems.append(f"{where}: {flow}.topics {rx!r} {'carries' if hit else 'misses'} {topic}")
                for other in sites:
                    if other != site and any(re.fullmatch(rx, f"{prefix}.{other}.{k}") for k in SITE_TOPICS_UP + SITE_TOPICS_DOWN):
                        problems.append(f"{where}: {flow}.topics {rx!r} carries site {other}'s topics")
        # Exactly-once writes transactions into each target cluster it is
        # enabled for (globally or as <cluster>.exactly.once.source.support).
        for c, (svc, _, _) in sorted(brokers.items()):
            eos = props.get(f"{c}.exactly.once.source.support", props.get("exactly.once.source.support", "disabled"))
            if eos == "enabled":
                rf = int(_env(self.services[svc]).get("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "3"))
                if rf > 1:
                    problems.append(f"service {svc}: exactly-once MirrorMaker needs transactions, but the "
                                    f"single broker's transaction log wants {rf} replicas")
        return problems

    def check_dockerfile(self, packages=None):
        """packages: a PackageInfo (host dpkg), or None to skip the library
        checks (not on Debian)."""
        problems = []
        built = {}
        for name, svc in sorted(self.services.items()):
            b = svc.get("build")
            # the Kafka image ships jars, not callbus programs (check_images)
            if b and not self.is_kafka_image(name):
                built.setdefault((b["context"], b.get("dockerfile", "Dockerfile")), []).append((name, b.get("target")))
        if not built:
            return ["no service is built from a Dockerfile"]
        for (ctx, df), users in sorted(built.items()):
            path = Path(df) if Path(df).is_absolute() else Path(ctx) / df
            stages = parse_dockerfile(path)
            names = {s["name"]: s for s in stages}
            where = f"{path.relative_to(self.repo) if self.repo in path.parents else path}"
            for svc, target in users:
                stage = names.get(target) if target else stages[-1]
                if stage is None:
                    problems.append(f"service {svc}: build target {target} is not a stage of {where}")
                    continue
                problems += self._check_stage_runs(where, svc, stage, names, Path(ctx))
                problems += self._check_secret_owner(where, svc, stage, names)
                problems += self._check_www(where, svc, stage, names, Path(ctx))
            for st in stages:
                for cp in st["copies"]:
                    if cp["from"]:
                        continue
                    for src in cp["srcs"]:
                        if not (Path(ctx) / src).exists():
                            problems.append(f"{where}: stage {st['name']}: COPY {src}: not in the build context")
            problems += self._check_build_stage(where, stages)
            if packages is not None:
                problems += self._check_libraries(where, stages, names, packages)
        return problems

    def _stage_chain(self, stage, names):
        chain = [stage]
        while chain[-1]["base"] in names:
            chain.append(names[chain[-1]["base"]])
        return chain

    def _shipped(self, stage, names):
        """{absolute path in the image: (from stage, source)} of COPYs."""
        out = {}
        for st in reversed(self._stage_chain(stage, names)):
            for cp in st["copies"]:
                for src in cp["srcs"]:
                    dest = cp["dest"]
                    if dest.endswith("/") or len(cp["srcs"]) > 1:
                        dest = str(PurePosixPath(dest) / PurePosixPath(src).name)
                    out[dest] = (cp["from"], src)
        return out

    def _check_stage_runs(self, where, svc, stage, names, ctx):
        problems = []
        cmd = _cmd(self.services[svc])
        if not cmd:
            return problems
        prog = cmd[0]
        shipped = self._shipped(stage, names)
        if prog.startswith("/"):
            hit = shipped.get(prog)
        else:
            hit = next((v for k, v in shipped.items()
                        if PurePosixPath(k).name == prog and str(PurePosixPath(k).parent) in ("/usr/local/bin", "/usr/bin", "/bin")), None)
        if prog in ("python3", "sh", "/bin/sh", "bash"):
            # an interpreter: the script must be shipped (or mounted)
            script = next((a for a in cmd[1:] if not a.startswith("-")), None)
            if script and script not in shipped and not any(
                    script.startswith(k.rstrip("/") + "/") for k in shipped) and self.container_file(svc, script) is None:
                problems.append(f"service {svc}: runs {script}, which {where} stage {stage['name']} does not ship")
            return problems
        if hit is None:
            problems.append(f"service {svc}: runs {prog}, which {where} stage {stage['name']} does not install")
            return problems
        src_stage, src = hit
        if src_stage:
            st = names.get(src_stage)
            prog_name = PurePosixPath(src).name
            if st is None or not any("make" in r for r in st["runs"]):
                problems.append(f"service {svc}: {prog} comes from stage {src_stage}, which runs no make")
            elif not (self.build_dir / prog_name).is_file():
                problems.append(f"service {svc}: {prog_name} is not a program `make all` builds (not in build/)")
        return problems

    def _check_www(self, where, svc, stage, names, ctx):
        """The gateway's www_dir is where the image has the operator page."""
        argv = _cmd(self.services[svc])
        if not argv or PurePosixPath(argv[0]).name != "callbus-gateway":
            return []
        path, err = self.config_path(svc, argv)
        if err:
            return []
        www = libconfig_reader.get(libconfig_reader.load(path), "gateway.www_dir", "gateway/www")
        hit = self._shipped(stage, names).get(www)
        if hit is None or hit[0] or not (ctx / hit[1] / "index.html").is_file():
            return [f"service {svc}: gateway.www_dir {www} is not where {where} stage {stage['name']} "
                    "puts the operator page (gateway/www)"]
        return []

    def _check_secret_owner(self, where, svc, stage, names):
        """A service running as the image's unprivileged user gets its secrets
        as that user's, readable by nobody else."""
        chain = self._stage_chain(stage, names)
        user = next((s["user"] for s in chain if s["user"]), None)
        if not user or user in ("root", "0"):
            return []
        uid = next((u for s in chain for u in [s["uids"].get(user)] if u), None)
        if uid is None:
            return [f"{where}: stage {stage['name']} runs as {user} without a fixed uid (useradd --uid)"]
        problems = []
        for sec in self.services[svc].get("secrets") or []:
            mode = int(str(sec.get("mode", "0444")), 8)
            if str(sec.get("uid")) != uid or mode & 0o077:
                problems.append(f"service {svc}: secret {sec['source']} should be uid {uid} ({user}) "
                                f"mode 0400, is uid {sec.get('uid', 'default')} mode {oct(mode)}")
        return problems

    def _check_build_stage(self, where, stages):
        """The stage that runs make copies every source dir the Makefile's
        programs are built from."""
        problems = []
        mk = (self.repo / "Makefile").read_text()
        dirs = set()
        for pat in re.findall(r"\$\(wildcard ([^)]+)\)", mk):
            for p in pat.split():
                d = str(PurePosixPath(p).parent)
                if not d.startswith("tests") and d != ".":
                    dirs.add(d)
        builders = [s for s in stages if any(re.search(r"\bmake\b", r) for r in s["runs"])]
        if not builders:
            return [f"{where}: no stage runs make"]
        for st in builders:
            copied = {src.rstrip("/") for cp in st["copies"] if not cp["from"] for src in cp["srcs"]}
            for d in sorted(dirs):
                if d not in copied and not any(d.startswith(c + "/") for c in copied) and "." not in copied:
                    problems.append(f"{where}: stage {st['name']} runs make without the Makefile's sources in {d}/")
            if "Makefile" not in copied and "." not in copied:
                problems.append(f"{where}: stage {st['name']} runs make without the Makefile")
        return problems

    def _check_libraries(self, where, stages, names, packages):
        problems = []
        builders = [s for s in stages if any(re.search(r"\bmake\b", r) for r in s["runs"])]
        for st in builders:
            have = set().union(*(s["packages"] for s in self._stage_chain(st, names)))
            if "build-essential" not in have:
                problems.append(f"{where}: stage {st['name']} does not install build-essential")
            for flag, pkg in packages.link_packages():
                if pkg is None:
                    problems.append(f"{where}: the linker finds no library for {flag} on this machine")
                elif pkg not in have and pkg not in ("libc6-dev",):
                    problems.append(f"{where}: stage {st['name']} does not install {pkg}, which provides {flag} "
                                    "(a link line of `make all`)")
        for stage in stages:
            shipped = self._shipped(stage, names)
            progs = sorted({PurePosixPath(src).name for fr, src in shipped.values() if fr})
            if not progs:
                continue
            have = set().union(*(s["packages"] for s in self._stage_chain(stage, names)))
            for pkg in packages.runtime_plugins():
                if pkg not in have:
                    problems.append(f"{where}: stage {stage['name']} ships {', '.join(progs)} without {pkg}, "
                                    "a run-time library tools/setup.sh installs for them")
            for prog in progs:
                binary = self.build_dir / prog
                if not binary.is_file():
                    continue
                for soname, pkg in packages.runtime_packages(binary):
                    if pkg is None:
                        problems.append(f"{where}: {prog} needs {soname}, which no Debian package provides here")
                    elif pkg not in have and pkg != "libc6":
                        problems.append(f"{where}: stage {stage['name']} ships {prog}, which needs {soname} "
                                        f"from {pkg}, not installed there")
        return problems


# -------------------------------------------------------------------- helpers

def _dialplan_jumps(plan, queues):
    """Every Goto/Gosub/pre-dial handler/Local channel/Queue in the dialplan
    lands on a context, extension and queue that exist."""
    problems = []
    queue_names = {s.name for s in queues if not s.is_template and s.name != "general"}

    def target(ctx, exten, what, here):
        c = plan.get(ctx)
        if c is None:
            problems.append(f"[{here}] {what}: no context [{ctx}]")
        elif exten and "${" not in exten and not asterisk_conf.matches(c, exten):
            problems.append(f"[{here}] {what}: [{ctx}] has no extension {exten}")

    for name, ctx in sorted(plan.items()):
        for exten, app, args in ctx.steps:
            what = f"{app}({args})"
            a = [x.strip() for x in args.split(",")]
            if app in ("Goto", "Gosub"):
                if len(a) >= 3:
                    target(a[0], a[1], what, name)
                elif len(a) == 2:
                    target(name, a[0], what, name)
            for m in re.finditer(r"\bb\(([^)^]+)\^([^)^]+)\^[^)]+\)", args):
                target(m.group(1), m.group(2), what, name)
            for m in re.finditer(r"Local/([^@,&]+)@([^,/&)]+)", args):
                target(m.group(2), m.group(1), what, name)
            if app == "Queue" and a and "${" not in a[0] and a[0] not in queue_names:
                problems.append(f"[{name}] {what}: queues.conf has no queue {a[0]}")
    return problems


def agent_actions(agent_dir):
    """AMI action names callbus-agent's sources send."""
    names = set()
    for f in sorted(Path(agent_dir).glob("*.c")):
        src = f.read_text()
        names.update(re.findall(r'->name\s*=\s*"([A-Za-z]+)"', src))
        names.update(re.findall(r'ami_client_send(?:_as)?\([^,]+,\s*"([A-Za-z]+)"', src))
        names.update(re.findall(r'queue_action\([^,]+,\s*"([A-Za-z]+)"', src))
    return names


def read_properties(path):
    props = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        k, _, v = line.partition("=")
        props[k.strip()] = v.strip()
    return props


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    d = Deployment(json.loads(Path(argv[1]).read_text()), repo / "compose", repo)
    bad = 0
    for check in ("images", "site_configs", "centre", "dialplan", "manager", "mirror_maker", "dockerfile"):
        args = (PackageInfo(repo),) if check == "dockerfile" else ()
        problems = getattr(d, "check_" + check)(*args)
        print(f"{check}: {'ok' if not problems else ''}")
        for p in problems:
            print(f"  {p}")
        bad += len(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
