"""dockerfile.py -- reads a Dockerfile into its stages, for the compose
checks: each stage's base, RUN lines, the packages its `apt-get install`
lines name, COPY/ADD sources and destinations (with --from), USER and the
uids `useradd --uid` gives. Line continuations and comment lines are handled
as Docker does; parser directives, heredocs and ARG substitution are not
(compose/Dockerfile uses none).
"""

import re
import shlex
from pathlib import Path


def parse_dockerfile(path):
    """[{name, base, runs: [str], copies: [{from, srcs, dest}], packages: set}]"""
    lines, cur = [], ""
    for raw in Path(path).read_text().splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and not cur):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    stages = []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else str(len(stages))
            stages.append({"name": name, "base": parts[0], "runs": [], "copies": [], "packages": set(),
                           "user": None, "uids": {}})
        elif not stages:
            continue
        elif instr == "USER":
            stages[-1]["user"] = rest.split(":")[0].strip()
        elif instr == "RUN":
            stages[-1]["runs"].append(rest)
            for m in re.finditer(r"useradd\b([^&;|]*)", rest):
                words = m.group(1).split()
                if "--uid" in words and words.index("--uid") + 1 < len(words):
                    stages[-1]["uids"][words[-1]] = words[words.index("--uid") + 1]
            for seg in re.split(r"&&|;|\|", rest):
                words = shlex.split(seg)
                if "apt-get" in words and "install" in words:
                    after = words[words.index("install") + 1:]
                    stages[-1]["packages"].update(w for w in after if not w.startswith("-"))
        elif instr in ("COPY", "ADD"):
            words = shlex.split(rest)
            frm = None
            args = []
            for w in words:
                if w.startswith("--from="):
                    frm = w.split("=", 1)[1]
                elif not w.startswith("--"):
                    args.append(w)
            if len(args) >= 2:
                stages[-1]["copies"].append({"from": frm, "srcs": args[:-1], "dest": args[-1]})
    return stages
