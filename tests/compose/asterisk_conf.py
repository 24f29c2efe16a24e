"""asterisk_conf.py -- reads Asterisk configuration files (manager.conf,
extensions.conf, pjsip.conf, queues.conf) the way Asterisk's config parser
sees them: [sections], (!) templates and (template) inheritance, `key = value`
and `key => value` lines, `;` comments (`\\;` is a literal semicolon), and
the dialplan's `exten =>` / `same =>` lines with their extension patterns.
Used by the compose checks; it reads, it does not validate Asterisk syntax.
"""

import re


def _strip_comment(line):
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


class Section:
    def __init__(self, name, is_template, parents):
        self.name = name
        self.is_template = is_template
        self.parents = parents
        self.items = []          # [(key, value)] in file order, inherited first

    def get(self, key, default=None):
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def all(self, key):
        return [v for k, v in self.items if k == key]


_SECTION = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?$")


def parse(text):
    """[Section] in file order (a name may repeat, as pjsip.conf allows for
    different object types)."""
    sections, cur, by_name = [], None, {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        m = _SECTION.match(line)
        if m:
            opts = [o.strip() for o in (m.group(2) or "").split(",") if o.strip()]
            is_template = "!" in opts
            parents = [o for o in opts if o not in ("!", "+")]
            cur = Section(m.group(1).strip(), is_template, parents)
            for p in parents:
                base = by_name.get(p)
                if base is None:
                    raise ValueError(f"line {lineno}: [{cur.name}] inherits unknown template {p}")
                cur.items.extend(base.items)
            sections.append(cur)
            by_name[cur.name] = cur
            continue
        if line.startswith("#"):
            continue             # #include / #exec: not used by compose/
        if cur is None:
            raise ValueError(f"line {lineno}: setting outside any section: {raw!r}")
        m = re.match(r"^([^=]+?)\s*=>?\s*(.*)$", line)
        if not m:
            raise ValueError(f"line {lineno}: not a setting: {raw!r}")
        cur.items.append((m.group(1).strip(), m.group(2).strip()))
    return sections


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def section(sections, name):
    """The last non-template section of that name, or None."""
    found = [s for s in sections if s.name == name and not s.is_template]
    return found[-1] if found else None


# ---------------------------------------------------------------- dialplan

class Context:
    def __init__(self, name):
        self.name = name
        self.extens = []          # patterns in file order
        self.steps = []           # (exten pattern, app, args) for every priority


def dialplan(sections):
    """{context name: Context} from extensions.conf sections."""
    out = {}
    for s in sections:
        if s.name in ("general", "globals") or s.is_template:
            continue
        ctx = out.setdefault(s.name, Context(s.name))
        exten = None
        for key, value in s.items:
            if key == "exten":
                parts = value.split(",", 2)
                if len(parts) < 3:
                    raise ValueError(f"[{s.name}] exten => {value}: expected exten,priority,app")
                exten = parts[0].strip()
                if exten not in ctx.extens:
                    ctx.extens.append(exten)
                app = parts[2]
            elif key == "same":
                if exten is None:
                    raise ValueError(f"[{s.name}] same => before any exten")
                app = value.split(",", 1)[1] if "," in value else value
            else:
                continue
            m = re.match(r"^\s*([A-Za-z0-9_]+)\s*\((.*)\)\s*$", app)
            if m:
                ctx.steps.append((exten, m.group(1), m.group(2)))
            else:
                ctx.steps.append((exten, app.strip(), ""))
    return out


def pattern_regex(pattern):
    """The regex an extension matches: a literal, or a `_` pattern (X, Z, N in
    either case, [...] sets, `.` one or more, `!` zero or more)."""
    if not pattern.startswith("_"):
        return re.compile(re.escape(pattern))
    out, i, p = [], 0, pattern[1:]
    while i < len(p):
        c = p[i]
        if c in "xX":
            out.append("[0-9]")
        elif c in "zZ":
            out.append("[1-9]")
        elif c in "nN":
            out.append("[2-9]")
        elif c == "[":
            j = p.index("]", i)
            out.append("[" + p[i + 1:j].replace("\\", "\\\\") + "]")
            i = j
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def matches(ctx, exten):
    return any(pattern_regex(p).fullmatch(exten) for p in ctx.extens)


def example(pattern):
    """One extension the pattern matches (the pattern itself for a literal)."""
    if not pattern.startswith("_"):
        return pattern
    out, i, p = [], 0, pattern[1:]
    sub = {"x": "0", "z": "1", "n": "2", ".": "0", "!": ""}
    while i < len(p):
        c = p[i]
        if c == "[":
            j = p.index("]", i)
            out.append(p[i + 1])
            i = j
        else:
            out.append(sub.get(c.lower(), c))
        i += 1
    return "".join(out)
