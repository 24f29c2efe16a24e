#!/usr/bin/env python3
"""Validate callbus messages against the JSON Schemas in schemas/.

Importable:
    from schema_check import load_registry, validate_message
    load_registry()                      # default: <repo>/schemas
    errors = validate_message(obj)       # [] when valid

CLI:
    python3 tests/integration/schema_check.py FILE.jsonl [FILE.jsonl ...]
    (- reads standard input). Each non-empty line is one message (a Kafka
    record value). Prints one line per violation, exits 1 if any.

Besides the schema, validate_message checks what JSON Schema cannot: the id
`<site>:<producer>:<epoch>:<seq>` agrees with the `epoch` and `seq`
attributes and with the site in `source`.

Needs: jsonschema >= 4.18 (with referencing). date-time is checked here
(RFC 3339, no extra package needed). `pattern` is matched with ECMA-262
semantics, as JSON Schema says and as the C validator (tools/callbus/jschema.c,
PCRE2) does, not with Python's: see ecma_regex.
"""

import datetime
import functools
import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://callbus.dev/schemas/"
NON_TYPE_SCHEMAS = {"cloudevent", "defs"}

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def is_rfc3339(value):
    """Strict RFC 3339 date-time (with a real calendar date and offset)."""
    if not isinstance(value, str):
        return True  # format only applies to strings
    m = _RFC3339.fullmatch(value)  # match's $ would accept a trailing newline
    if not m:
        return False
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.date(y, mo, d)
    except ValueError:
        return False
    if h > 23 or mi > 59 or s > 60:  # 60: leap second
        return False
    off = m.group(8)
    if off not in ("Z", "z") and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        return False
    return True


@functools.lru_cache(maxsize=None)
def ecma_regex(pattern):
    """pattern compiled so that Python's re agrees with ECMA-262 (and with
    PCRE2 as tools/callbus/jschema.c compiles it, DOLLAR_ENDONLY, no UCP):
    `$` matches only at the very end (Python's also matches before a final
    newline, so "abc\\n" would pass ^[a-z]+$), and \\d \\w \\s are ASCII
    (Python's are Unicode for str patterns). A `$` outside a character class
    and not escaped becomes \\Z."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    return re.compile("".join(out), re.ASCII)


def _pattern(validator, patrn, instance, schema):
    """The `pattern` keyword (also under propertyNames), with ecma_regex."""
    if validator.is_type(instance, "string") and not ecma_regex(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def format_checker():
    checker = FormatChecker()
    checker.checks("date-time")(is_rfc3339)
    return checker


class SchemaSet:
    """The registry plus one compiled validator per message type."""

    def __init__(self, schemas_dir, registry, schemas, validators):
        self.schemas_dir = Path(schemas_dir)
        self.registry = registry
        self.schemas = schemas          # file stem -> schema dict (every file)
        self.validators = validators    # message type -> StrictValidator

    @property
    def types(self):
        return sorted(self.validators)


_current = None


def _no_dialect(schema):
    """schema without $schema (every file is 2020-12: test_schemas checks it).
    Following a $ref, jsonschema picks the validator class by the target's
    $schema, which would be the stock Draft202012Validator with Python's
    `pattern`; without it, StrictValidator stays."""
    return {k: v for k, v in schema.items() if k != "$schema"}


def load_registry(schemas_dir=None):
    """Load every *.schema.json in schemas_dir into a referencing.Registry.

    Each resource is registered under its $id and under its file name (so the
    relative $refs between files resolve either way). Returns a SchemaSet and
    makes it the default for validate_message."""
    global _current
    schemas_dir = Path(schemas_dir or DEFAULT_SCHEMAS_DIR)
    files = sorted(schemas_dir.glob("*.schema.json"))
    if not files:
        raise FileNotFoundError(f"no *.schema.json in {schemas_dir}")
    registry = Registry()
    schemas = {}
    for path in files:
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(_no_dialect(schema), default_specification=DRAFT202012)
        uris = {BASE_URI + path.name}
        if "$id" in schema:
            uris.add(schema["$id"])
        registry = registry.with_resources((uri, resource) for uri in uris)
        schemas[path.name[: -len(".schema.json")]] = schema
    registry = registry.crawl()
    checker = format_checker()
    compiled = {}
    for stem, schema in schemas.items():
        if stem in NON_TYPE_SCHEMAS:
            continue
        compiled[stem] = StrictValidator(_no_dialect(schema), registry=registry, format_checker=checker)
    _current = SchemaSet(schemas_dir, registry, schemas, compiled)
    return _current


def _path(err):
    return "/" + "/".join(str(p) for p in err.absolute_path)


def _cross_checks(obj):
    errors = []
    ident = obj.get("id")
    if not isinstance(ident, str):
        return errors
    parts = ident.split(":")
    if len(parts) not in (4, 5):
        return errors
    site, epoch, seq = parts[0], parts[-2], parts[-1]
    if isinstance(obj.get("epoch"), int) and epoch.isdigit() and int(epoch) != obj["epoch"]:
        errors.append(f"/id: epoch {epoch} in id differs from epoch attribute {obj['epoch']}")
    if isinstance(obj.get("seq"), int) and seq.isdigit() and int(seq) != obj["seq"]:
        errors.append(f"/id: seq {seq} in id differs from seq attribute {obj['seq']}")
    src = obj.get("source")
    if isinstance(src, str) and src.startswith("callbus://"):
        src_site = src[len("callbus://"):].split("/", 1)[0]
        if src_site != site:
            errors.append(f"/id: site {site!r} in id differs from site {src_site!r} in source")
    return errors


def validate_message(obj, schemas=None):
    """Return a list of human-readable violations ([] when obj is valid)."""
    schemas = schemas or _current or load_registry()
    if not isinstance(obj, dict):
        return [f"/: message is not a JSON object ({type(obj).__name__})"]
    mtype = obj.get("type")
    if not isinstance(mtype, str):
        return ["/type: missing or not a string"]
    validator = schemas.validators.get(mtype)
    if validator is None:
        return [f"/type: unknown message type {mtype!r}"]
    errors = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: (list(e.absolute_path), e.message)):
        errors.append(f"{_path(err)}: {err.message}")
        # allOf/if-then wrap the useful detail; surface the leaf errors too
        for sub in sorted(err.context or [], key=lambda e: list(e.absolute_path)):
            errors.append(f"  {_path(sub)}: {sub.message}")
    errors.extend(_cross_checks(obj))
    return errors


def _lines(name):
    if name == "-":
        yield from enumerate(sys.stdin, 1)
    else:
        with open(name, encoding="utf-8") as f:
            yield from enumerate(f, 1)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="FILE.jsonl", help="JSON lines to check (- = stdin)")
    ap.add_argument("--schemas", default=None, help=f"schema directory (default {DEFAULT_SCHEMAS_DIR})")
    ap.add_argument("-q", "--quiet", action="store_true", help="print violations only, no summary")
    args = ap.parse_args(argv)
    schemas = load_registry(args.schemas)
    total = bad = 0
    for name in args.files:
        for lineno, line in _lines(name):
            line = line.strip()
            if not line:
                continue
            total += 1
            try:
                obj = json.loads(line)
            except ValueError as e:
                errs = [f"/: invalid JSON: {e}"]
            else:
                errs = validate_message(obj, schemas)
            if errs:
                bad += 1
                ident = obj.get("id", "?") if isinstance(obj, dict) and not isinstance(obj, str) else "?"
                for e in errs:
                    print(f"{name}:{lineno}: [{ident}] {e}")
    if not args.quiet:
        print(f"{total} messages, {bad} invalid", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
