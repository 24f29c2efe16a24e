"""The documentation against the tree (no Kafka needed, well under a second).

Docs drift when code moves: a renamed file leaves a dead link, a new setting
is parsed but never documented, a documented one is no longer read. These
checks catch that mechanically; whether the prose is right is for review.
"""

import re
from pathlib import Path

import pytest

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


def config_keys():
    """Every setting lib/config.c reads, as its dotted path."""
    src = (ROOT / "lib" / "config.c").read_text()
    keys = set(re.findall(r'(?:copy_string|copy_int|load_strings|copy_bool|config_lookup)'
                          r'\(\s*(?:&?cf)\s*,\s*"([a-z_.]+)"', src))
    assert len(keys) > 40, "the pattern no longer finds lib/config.c's settings"
    return keys


def readme_config_rows():
    """The settings named in the first column of README's configuration tables."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    names = set()
    for cell in re.findall(r"^\| ([^|]+) \|", section, re.M):
        names.update(re.findall(r"`([a-z_.]+)`", cell))
    return names - {"setting"}


def test_every_setting_is_in_the_readme():
    missing = config_keys() - readme_config_rows()
    assert not missing, f"README's configuration reference lacks {sorted(missing)}"


def test_the_readme_documents_no_setting_the_code_ignores():
    unknown = readme_config_rows() - config_keys()
    assert not unknown, f"README documents settings lib/config.c does not read: {sorted(unknown)}"


@pytest.mark.parametrize("example, prefixes", [
    ("agent/agent.conf.example", ("agent.", "commands.", "")),
    ("gateway/gateway.conf.example", ("gateway.",)),
])
def test_every_setting_is_in_its_example(example, prefixes):
    text = (ROOT / example).read_text()
    keys = [k for k in config_keys()
            if any(k.startswith(p) for p in prefixes if p) or ("" in prefixes and "." not in k)]
    # A setting appears as "name =" (set or commented out) in its section.
    missing = [k for k in keys if not re.search(rf"^\s*#?\s*{re.escape(k.rsplit('.', 1)[-1])}\s*=", text, re.M)]
    assert not missing, f"{example} lacks {sorted(missing)}"


def test_make_targets_named_in_the_docs_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9_-]*):", makefile, re.M))
    named = set()
    for md in MARKDOWN:
        # "There is no `make install`" names a target on purpose.
        named.update(re.findall(r"(?<!no )`(?:[A-Z_]+=\S+ )*make ([a-z][a-z0-9_-]*)", md.read_text()))
    assert named, "the pattern no longer finds `make TARGET` in the docs"
    assert not named - targets, f"docs name make targets the Makefile lacks: {sorted(named - targets)}"
