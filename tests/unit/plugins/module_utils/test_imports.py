"""module_utils imports go one way (docs/design.md, "The layers"): no cycle, late imports included."""

from __future__ import annotations

import ast
from pathlib import Path

UTILS = Path(__file__).resolve().parents[4] / "plugins" / "module_utils"
PREFIX = "ansible_collections.thingspace.m2m.plugins.module_utils."


def _imports():
    graph = {}
    for path in UTILS.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
                names.add(node.module[len(PREFIX):])
        graph[path.stem] = names
    return graph


def test_no_import_cycle():
    graph = _imports()
    done, path = set(), []

    def visit(name):
        assert name not in path, "import cycle: %s" % " -> ".join([*path[path.index(name):], name])
        if name in done:
            return
        path.append(name)
        for imported in graph.get(name, ()):
            visit(imported)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_errors_and_the_leaves_import_nothing_of_the_collection():
    graph = _imports()
    assert graph["errors"] == set() and graph["env"] == set() and graph["sms"] == set()
