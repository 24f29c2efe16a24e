"""The documentation against the tree (no Kafka needed, well under a second).

Docs drift when code moves: a renamed file leaves a dead link, a renamed
setting a stale name, a new make target goes unmentioned. The configuration
reference and the example configs are generated from the settings table
lib/config.c loads by (`make config-docs`), and fail here when they differ
from it. These checks catch drift mechanically; whether the prose is right
is for review.
"""

import difflib
import re
import subprocess
from pathlib import Path

import pytest

from conftest import build_path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"node_modules", "build", "build-san", "build-fuzz", ".git"}
MARKDOWN = sorted(p for p in ROOT.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md):
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", md.read_text(), re.M)}


def links(md):
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)  # code blocks hold no links
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(md):
    broken = []
    for target in links(md):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, frag = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            broken.append(target)
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            broken.append(target)
    assert not broken, f"{md.relative_to(ROOT)}: broken links {broken}"


def configdoc(*args):
    """tools/configdoc: the reference, the examples and the settings, from
    the table lib/config.c loads by."""
    r = subprocess.run([str(build_path("configdoc")), *args], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def settings():
    """{setting: programs that read it}, from the table."""
    rows = dict((line.split()[0], line.split()[1:]) for line in configdoc("names").splitlines())
    assert len(rows) > 50, "configdoc names lists too few settings"
    return rows


def assert_generated(path, text):
    current = (ROOT / path).read_text()
    diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True), path, "generated"))
    assert not diff, f"{path} differs from the settings table in lib/config.c: run make config-docs\n{diff}"


def test_the_configuration_reference_is_the_table():
    assert_generated("docs/configuration.md", configdoc("reference", "docs/configuration.md"))


@pytest.mark.parametrize("program", ["agent", "gateway"])
def test_the_example_config_is_the_table(program):
    assert_generated(f"{program}/{program}.conf.example", configdoc("example", program))


def test_every_setting_is_documented():
    """A row per setting in the reference, and a line in the example of each
    program that reads it (so a generator bug cannot drop one quietly)."""
    reference = (ROOT / "docs" / "configuration.md").read_text()
    examples = {p: (ROOT / p / f"{p}.conf.example").read_text() for p in ("agent", "gateway")}
    missing = []
    for name, programs in settings().items():
        if f"| `{name}` |" not in reference:
            missing.append(f"docs/configuration.md: {name}")
        for p in ("agent", "gateway"):
            line = rf"^\s*#?\s*{re.escape(name.rsplit('.', 1)[-1])}\s*="
            if f"callbus-{p}" in programs and not re.search(line, examples[p], re.M):
                missing.append(f"{p}/{p}.conf.example: {name}")
    assert not missing, f"settings not documented: {missing}"


def test_the_docs_name_only_real_settings():
    """`agent.x`, `commands.x`, `gateway.x` anywhere in the docs is a setting
    (or section) the programs load: a renamed one leaves no stale name."""
    known = set(settings())
    known |= {name.rsplit(".", 1)[0] for name in known}
    files = {"c", "h", "conf", "example", "log", "md"}
    stale = set()
    for md in MARKDOWN:
        for name in re.findall(r"`((?:agent|commands|gateway)\.[a-z_.]+)`", md.read_text()):
            if name.rsplit(".", 1)[-1] not in files and name not in known:
                stale.add(f"{md.relative_to(ROOT)}: {name}")
    assert not stale, f"docs name settings lib/config.c does not have: {sorted(stale)}"


def test_make_targets_named_in_the_docs_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9_-]*):", makefile, re.M))
    named = set()
    for md in MARKDOWN:
        # "There is no `make install`" names a target on purpose.
        named.update(re.findall(r"(?<!no )`(?:[A-Z_]+=\S+ )*make ([a-z][a-z0-9_-]*)", md.read_text()))
    assert named, "the pattern no longer finds `make TARGET` in the docs"
    assert not named - targets, f"docs name make targets the Makefile lacks: {sorted(named - targets)}"


def test_every_make_target_is_documented():
    """Each target the Makefile declares .PHONY has its row in docs/development.md."""
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    assert len(phony) > 10, "the pattern no longer finds the Makefile's .PHONY targets"
    documented = set(re.findall(r"`make ([a-z][a-z0-9_-]*)`", (ROOT / "docs" / "development.md").read_text()))
    assert not phony - documented, f"docs/development.md lacks make targets {sorted(phony - documented)}"


def test_every_test_the_guarantees_name_exists():
    """docs/guarantees.md names the test behind each promise: a renamed or
    deleted test must not leave a promise pointing at nothing."""
    doc = (ROOT / "docs" / "guarantees.md").read_text()
    section = doc.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    defined = {}
    for f in (ROOT / "tests" / "integration").glob("test_*.py"):
        for name in re.findall(r"^def (test_\w+)\(", f.read_text(), re.M):
            defined.setdefault(name, set()).add(f.name)
    named = re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+)(?:\[[\w-]+\])?`", section)
    assert len(named) > 15, "the pattern no longer finds the tests the guarantees name"
    missing = [f"{f}::{t}" if f else t for f, t in named if t not in defined or (f and f not in defined[t])]
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"


def test_every_amisim_option_is_in_its_help():
    src = (ROOT / "tools" / "amisim" / "main.c").read_text()
    options = set(re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', src))
    usage = src.split("static void usage", 1)[1].split("\n}\n", 1)[0]
    assert len(options) > 30, "the pattern no longer finds amisim's options"
    missing = sorted(o for o in options if o != "help" and f"--{o}" not in usage)
    assert not missing, f"amisim --help lacks {missing}"


def test_every_ground_truth_key_is_in_docs_amisim():
    """The stats file's "truth" is what tests and benchmarks check a
    consumer against: each key truth.c writes is explained."""
    src = (ROOT / "tools" / "amisim" / "truth.c").read_text()
    json_part = src.split("/* ---- JSON ---- */", 1)[1]
    keys = {k for k in re.findall(r'"([a-z][a-z_]*)"', json_part)}
    assert len(keys) > 30, "the pattern no longer finds truth.c's keys"
    doc = (ROOT / "docs" / "amisim.md").read_text()
    missing = sorted(k for k in keys if not re.search(rf"[`.]{k}\b", doc))
    assert not missing, f"docs/amisim.md lacks {missing}"


def test_bad_input_catalogue_names_real_tests():
    """Each entry of docs/bad-input.md names the test behind it
    (path::function), and that test exists."""
    rows = [line for line in (ROOT / "docs/bad-input.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| input ", "|---"))]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"docs/bad-input.md: not input | answer | test: {row}"
        for ref in re.findall(r"`?([\w/.-]+)::(\w+)`?", cells[2]) or pytest.fail(f"no path::test in: {row}"):
            path, name = ROOT / ref[0], ref[1]
            assert path.is_file(), f"docs/bad-input.md: {ref[0]} does not exist ({row})"
            assert re.search(rf"\b(def|void) {name}\(", path.read_text()), \
                f"docs/bad-input.md: no test {name} in {ref[0]}"
