#!/usr/bin/env python3
"""msgcheck.py -- validation of callbus messages against the JSON Schemas in
schemas/, with python-jsonschema: the one validator of the tree. `callbus
check` (tools/callbus/check.c) runs this file to validate; the tests import
it (through tests/integration/schema_check.py).

Importable:
    from msgcheck import load_registry, validate_message
    load_registry()                      # default: <repo>/schemas
    errors = validate_message(obj)       # [] when valid

Command line (what `callbus check` runs; exit 0 all valid, 1 violations,
2 bad schemas, 3 file error):
    msgcheck.py --schemas DIR [--json] --file F [--file F2 ...]   (- = stdin)
    msgcheck.py --schemas DIR [--json] --records                  (stdin)
A --file line is a message, or a record as `callbus replay` prints it (then
its value is checked and the report names topic, partition and offset).
--records reads the records check.c consumed from Kafka, each framed as one
line "TOPIC PARTITION OFFSET LENGTH" (LENGTH -1 for a tombstone) followed by
LENGTH bytes of value, so a value that is not JSON reaches us as it was.

Besides the schema, validate_message checks what JSON Schema cannot: the id
`<site>:<producer>:<epoch>:<seq>` agrees with the `epoch` and `seq`
attributes and with the site in `source`.

Needs: jsonschema >= 4.18 (with referencing). date-time is checked here
(RFC 3339, no extra package needed). `pattern` is matched with ECMA-262
semantics, as JSON Schema says, not with Python's: see ecma_regex. A schema
may only use the keywords listed in KEYWORDS, whose checks are known to be
right here: any other (a `patternProperties` would match the Python way, a
`format` other than date-time would not be checked at all) is refused when
the schemas are loaded, so nothing passes unchecked.
"""

import datetime
import functools
import json
import re
import sys
from pathlib import Path

try:
    from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012
except ImportError as e:  # what an operator sees from `callbus check`
    if __name__ != "__main__":
        raise
    sys.exit(f"callbus check: needs python3 with jsonschema >= 4.18 (pip install 'jsonschema>=4.18'): {e}")

DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
BASE_URI = "https://callbus.dev/schemas/"
NON_TYPE_SCHEMAS = {"cloudevent", "defs"}

# The keywords a schema may use (besides x-* extensions); see the docstring.
ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated",
               "readOnly", "writeOnly", "contentEncoding", "contentMediaType"}
SUBSCHEMA = {"additionalProperties", "items", "propertyNames", "not", "if", "then", "else"}
SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SUBSCHEMA_MAPS = {"$defs", "properties"}
ASSERTIONS = {"type", "const", "enum", "required", "pattern", "format", "$ref", "minLength", "maxLength",
              "minItems", "maxItems", "minProperties", "maxProperties", "minimum", "maximum",
              "exclusiveMinimum", "exclusiveMaximum"}
KEYWORDS = ANNOTATIONS | SUBSCHEMA | SUBSCHEMA_LISTS | SUBSCHEMA_MAPS | ASSERTIONS


class SchemaError(Exception):
    """A schema directory that cannot be used (the message says why)."""


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
    """pattern compiled so that Python's re agrees with ECMA-262: `$`
    matches only at the very end (Python's also matches before a final
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


def _json(value):
    """A value as JSON in a message (JSON quoting: "a\\n", not Python's
    'a\\n'), cut at 80 characters."""
    s = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return s if len(s) <= 80 else s[:77] + "..."


def _pattern(validator, patrn, instance, schema):
    """The `pattern` keyword (also under propertyNames), with ecma_regex."""
    if validator.is_type(instance, "string") and not ecma_regex(patrn).search(instance):
        yield ValidationError(f"{_json(instance)} does not match {patrn}")


_stock_enum = Draft202012Validator.VALIDATORS["enum"]


def _enum(validator, enums, instance, schema):
    """The library's `enum`, its message with the values as JSON."""
    for _ in _stock_enum(validator, enums, instance, schema):
        yield ValidationError(f"{_json(instance)} is not one of {_json(enums)}")


StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern, "enum": _enum})


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


def _subschemas(key, value):
    """(suffix, subschema) of the keyword key's value."""
    if key in SUBSCHEMA:
        return [(key, value)]
    if key in SUBSCHEMA_LISTS and isinstance(value, list):
        return [(f"{key}/{i}", s) for i, s in enumerate(value)]
    if key in SUBSCHEMA_MAPS and isinstance(value, dict):
        return [(f"{key}/{k}", s) for k, s in value.items()]
    return []


def lint(schema, where=""):
    """Why schema uses something this validator does not vouch for, or None."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{where or '/'}: a schema must be an object or a boolean"
    for key, value in schema.items():
        if key.startswith("x-"):
            continue
        if key not in KEYWORDS:
            return f'{where or "/"}: keyword "{key}" is not implemented by this validator'
        if key == "format" and value != "date-time":
            return f'{where or "/"}: format "{value}" is not implemented'
        if key == "pattern":
            try:
                ecma_regex(value)
            except (re.error, TypeError) as e:
                return f"{where or '/'}: pattern {value}: {e}"
        for suffix, sub in _subschemas(key, value):
            why = lint(sub, f"{where}/{suffix}")
            if why:
                return why
    return None


def _read_schema(path):
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SchemaError(f"{path}: {e}") from None
    why = lint(schema)
    if why:
        raise SchemaError(f"{path.name}: {why}")
    return schema


def load_registry(schemas_dir=None):
    """Load every *.schema.json in schemas_dir into a referencing.Registry.

    Each resource is registered under its $id and under its file name (so the
    relative $refs between files resolve either way). Returns a SchemaSet and
    makes it the default for validate_message. Raises SchemaError."""
    global _current
    schemas_dir = Path(schemas_dir or DEFAULT_SCHEMAS_DIR)
    if not schemas_dir.is_dir():
        raise SchemaError(f"schemas directory {schemas_dir}: not a directory")
    files = sorted(schemas_dir.glob("*.schema.json"))
    if not files:
        raise SchemaError(f"no *.schema.json in {schemas_dir}")
    registry = Registry()
    schemas = {}
    for path in files:
        schema = _read_schema(path)
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
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in err.absolute_path)


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
    """Return a list of human-readable violations ([] when obj is valid):
    "POINTER: reason", each followed by its leaf errors indented by two
    spaces when an anyOf/oneOf wraps them."""
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


# ------------------------------------------------------------ callbus check

class Checker:
    """Counts and reports, in the format `callbus check` prints: one line
    per violation ("WHERE [ID] POINTER: reason", or a JSON object with
    --json) and a summary."""

    def __init__(self, schemas, as_json):
        self.schemas, self.as_json = schemas, as_json
        self.messages = self.invalid = self.violations = self.tombstones = 0

    def value(self, raw, where, loc):
        """Check one message (bytes or str); loc: the --json location fields."""
        self.messages += 1
        try:
            obj = json.loads(raw, parse_constant=_no_constant)
        except ValueError as e:  # UnicodeDecodeError too
            found = [("", f"not JSON: {getattr(e, 'msg', e)} (column {getattr(e, 'colno', 0)})")]
            obj = None
        else:
            found = [tuple(e.split(": ", 1)) for e in validate_message(obj, self.schemas) if not e.startswith("  ")]
        ident = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
        for pointer, reason in found:
            self.report(where, ident, "" if pointer == "/" else pointer, reason, loc)
        if found:
            self.invalid += 1

    def report(self, where, ident, pointer, reason, loc):
        self.violations += 1
        if self.as_json:
            print(json.dumps({"id": ident, "pointer": pointer, "reason": reason, **loc}, separators=(",", ":")))
        else:
            print(f"{where} [{ident or '?'}] {pointer or '/'}: {reason}")

    def line(self, text, name, lineno):
        """A line of a file: a message, or a record `callbus replay` printed."""
        where, loc = f"{name}:{lineno}", {"file": name, "line": lineno}
        try:
            rec = json.loads(text)
        except ValueError:
            rec = None
        if (isinstance(rec, dict) and "value" in rec and type(rec.get("offset")) is int
                and "partition" in rec and "headers" in rec):
            topic, part, off = rec.get("topic"), rec["partition"], rec["offset"]
            loc.update(topic=topic, partition=part, offset=off)
            self.value(json.dumps(rec["value"]), f"{where} {topic or '?'} [{part}] @{off}", loc)
        else:
            self.value(text, where, loc)

    def summary(self, schemas_dir):
        print(f"check: {self.messages} messages, {self.invalid} invalid, {self.violations} violations"
              f"{', tombstones skipped' if self.tombstones else ''} (schemas {schemas_dir}, "
              f"{len(self.schemas.validators)} types)", file=sys.stderr if self.as_json else sys.stdout)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def check_file(checker, name):
    """Bytes, so a line that is not UTF-8 is one message that is not JSON."""
    try:
        f = sys.stdin.buffer if name == "-" else open(name, "rb")
    except OSError as e:
        print(f"callbus check: {name}: {e.strerror}", file=sys.stderr)
        return False
    with f:
        for lineno, text in enumerate(f, 1):
            text = text.rstrip(b"\r\n")
            if text.strip(b" \t"):
                checker.line(text, "stdin" if name == "-" else name, lineno)
    return True


def check_records(checker, stream):
    """The framed records check.c writes (see the docstring)."""
    while head := stream.readline():
        topic, part, off, length = head.decode().split()
        part, off, length = int(part), int(off), int(length)
        if length < 0:
            checker.tombstones += 1
            continue
        loc = {"topic": topic, "partition": part, "offset": off}
        checker.value(stream.read(length), f"{topic} [{part}] @{off}", loc)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="callbus check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", default=str(DEFAULT_SCHEMAS_DIR), help="schema directory")
    ap.add_argument("--json", action="store_true", help="one JSON object per violation")
    ap.add_argument("--file", action="append", default=[], help="JSON lines to check (- = stdin)")
    ap.add_argument("--records", action="store_true", help="framed Kafka records on stdin (from check.c)")
    args = ap.parse_args(argv)
    try:
        schemas = load_registry(args.schemas)
    except SchemaError as e:
        print(f"callbus check: schemas: {e}", file=sys.stderr)
        return 2
    checker = Checker(schemas, args.json)
    ok = True
    if args.records:
        check_records(checker, sys.stdin.buffer)
    for name in args.file:
        ok = check_file(checker, name) and ok
    sys.stdout.flush()
    checker.summary(args.schemas)
    if not ok:
        return 3
    return 1 if checker.invalid else 0


if __name__ == "__main__":
    sys.exit(main())
