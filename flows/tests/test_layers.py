"""The apps form a one-way graph, imports inside functions included (flows/__init__.py):

    common <- outbox <- inventory <- orders <- payments <- invoicing <- notifications <- flows <- config

Every import of non-test code is read with `ast` (not by importing it), so an import placed
inside a function counts like any other. No app may import a higher one, and no app may
import config/."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["common", "outbox", "inventory", "orders", "payments", "invoicing", "notifications", "flows", "config"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def _imports(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def import_graph() -> dict[str, set[tuple[str, str]]]:
    """app -> {(imported app, "path:line")} over the non-test, non-migration code."""
    graph: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for app in LAYERS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            for module, line in _imports(path):
                top = module.split(".")[0]
                if top in RANK and top != app:
                    graph[app].add((top, f"{path.relative_to(ROOT)}:{line}"))
    return graph


def test_no_app_imports_a_higher_one_or_config():
    upward = sorted(
        f"{where}: {app} imports {target}"
        for app, edges in import_graph().items()
        for target, where in edges
        if RANK[target] > RANK[app] or (target == "config" and app != "config")
    )
    assert upward == []


def test_the_graph_has_no_cycle():
    graph = {app: {target for target, _ in edges} for app, edges in import_graph().items()}
    seen: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(app: str, path: list[str]) -> None:
        seen[app] = 1
        for target in sorted(graph.get(app, ())):
            assert seen.get(target) != 1, f"cycle: {' -> '.join([*path, app, target])}"
            if target not in seen:
                visit(target, [*path, app])
        seen[app] = 2

    for app in LAYERS:
        if app not in seen:
            visit(app, [])


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from invoicing.services import invoice_void\n")
    assert ("invoicing.services", 2) in _imports(module)
