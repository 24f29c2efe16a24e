"""libconfig_reader.py -- reads a libconfig file (the callbus config format)
into Python dicts and lists, so the compose checks can compare the settings
with compose.yaml. Only reading, only what libconfig 1.5 accepts: groups
{...}, lists (...), arrays [...], strings (escapes, adjacent literals joined),
integers (decimal, hex, L suffix), floats, booleans, and #, // and /* */
comments. The programs' own loader stays the judge of validity:
test_compose.py runs --check-config on every file and compares what both saw.
"""

import re

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)L{0,2})
  | (?P<bool>\b(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\b)
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<punct>[=:;,{}()\[\]])
""", re.X | re.S)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "\\": "\\", '"': '"'}


class ParseError(ValueError):
    pass


def _unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x" and i + 3 < len(s):
                out.append(chr(int(s[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _tokens(text):
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise ParseError(f"line {line}: cannot read {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            yield m.lastgroup, m.group(), text.count("\n", 0, m.start()) + 1


class _Parser:
    def __init__(self, text):
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None, 0)

    def take(self, want=None):
        kind, val, line = self.peek()
        if kind is None or (want is not None and val != want):
            raise ParseError(f"line {line}: expected {want or 'a value'}, found {val!r}")
        self.i += 1
        return kind, val, line

    def settings(self, closer=None):
        out = {}
        while True:
            kind, val, line = self.peek()
            if kind is None or val == closer:
                return out
            if kind != "name":
                raise ParseError(f"line {line}: expected a setting name, found {val!r}")
            self.take()
            if self.peek()[1] not in ("=", ":"):
                raise ParseError(f"line {line}: expected = after {val}")
            self.take()
            out[val] = self.value()
            if self.peek()[1] in (";", ","):
                self.take()

    def value(self):
        kind, val, line = self.take()
        if val == "{":
            v = self.settings("}")
            self.take("}")
            return v
        if val in ("(", "["):
            closer = ")" if val == "(" else "]"
            items = []
            while self.peek()[1] != closer:
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take()
            self.take(closer)
            return items
        if kind == "str":
            parts = [_unescape(val[1:-1])]
            while self.peek()[0] == "str":
                parts.append(_unescape(self.take()[1][1:-1]))
            return "".join(parts)
        if kind == "bool":
            return val.lower() == "true"
        if kind == "num":
            v = val.rstrip("L")
            if v.lower().lstrip("+-").startswith("0x"):
                return int(v, 16)
            return float(v) if any(c in v for c in ".eE") else int(v)
        raise ParseError(f"line {line}: unexpected {val!r}")


def loads(text):
    p = _Parser(text)
    out = p.settings()
    if p.peek()[0] is not None:
        raise ParseError(f"line {p.peek()[2]}: unexpected {p.peek()[1]!r}")
    return out


def load(path):
    with open(path, encoding="utf-8") as f:
        return loads(f.read())


def get(cfg, dotted, default=None):
    """cfg value at "a.b.c", or default."""
    v = cfg
    for part in dotted.split("."):
        if not isinstance(v, dict) or part not in v:
            return default
        v = v[part]
    return v
