"""amisim's module graph has no cycles (issue 13; no Kafka, well under a second).

A module is a file stem of tools/amisim: server.c and server.h are the
module "server"; a header without a .c of its own (sim.h, amisim.h) is a
module of its own. Every `#include "x.h"` of a file in tools/amisim naming a
header of tools/amisim is an edge from the file's module to x's. Headers of
lib/ (log.h, sbuf.h, ami.h) are below everything and not counted.

The event loop knows nothing of what it serves: producers (the call centre,
the replayer, the action handlers) register with it, so an edge back from
the loop to one of them would show up here as a cycle.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AMISIM = ROOT / "tools" / "amisim"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"', re.M)


def module_graph(src=AMISIM):
    """{module: set of modules it includes}, self-edges left out."""
    files = sorted(src.glob("*.c")) + sorted(src.glob("*.h"))
    local = {p.stem for p in src.glob("*.h")}
    graph = {p.stem: set() for p in files}
    for p in files:
        for name in INCLUDE.findall(p.read_text()):
            if name in local and name != p.stem:
                graph[p.stem].add(name)
    return graph


def find_cycle(graph):
    """One cycle as a list of modules [a, b, ..., a], or None."""
    state = {}  # 1 on the path, 2 done
    path = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_amisim_module_graph_is_acyclic():
    cycle = find_cycle(module_graph())
    assert cycle is None, "amisim include cycle: " + " -> ".join(cycle)


def test_the_check_sees_a_cycle(tmp_path):
    """The checker itself: a two-file circle is found."""
    (tmp_path / "a.c").write_text('#include "a.h"\n#include "b.h"\n')
    (tmp_path / "a.h").write_text("")
    (tmp_path / "b.c").write_text('#include "b.h"\n#include "a.h"\n')
    (tmp_path / "b.h").write_text("")
    assert find_cycle(module_graph(tmp_path)) == ["a", "b", "a"]


if __name__ == "__main__":
    # python3 tests/integration/test_amisim_modules.py: print every edge and a cycle, if any
    g = module_graph()
    for n in sorted(g):
        print(f"{n}: {' '.join(sorted(g[n]))}")
    c = find_cycle(g)
    print("cycle:", " -> ".join(c) if c else "none")
    sys.exit(1 if c else 0)
