"""The tests' access to the one message validator of the tree,
tools/callbus/msgcheck.py (python-jsonschema; what `callbus check` runs):

    from schema_check import load_registry, validate_message

CLI, for a test or by hand: python3 tests/integration/schema_check.py
FILE.jsonl [FILE.jsonl ...] (- = stdin) prints "FILE:LINE: [ID] violation"
lines and exits 1 if any message is invalid (`callbus check --file` is the
operator's form of it)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "callbus"))

from msgcheck import (DEFAULT_SCHEMAS_DIR, NON_TYPE_SCHEMAS, SchemaError, SchemaSet,  # noqa: E402,F401
                      ecma_regex, is_rfc3339, load_registry, validate_message)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    schemas = load_registry(DEFAULT_SCHEMAS_DIR)
    bad = 0
    for name in args:
        with (sys.stdin if name == "-" else open(name, encoding="utf-8")) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    errs = validate_message(obj, schemas)
                except ValueError as e:
                    obj, errs = None, [f"/: invalid JSON: {e}"]
                bad += bool(errs)
                ident = obj.get("id", "?") if isinstance(obj, dict) else "?"
                for e in errs:
                    print(f"{name}:{lineno}: [{ident}] {e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
