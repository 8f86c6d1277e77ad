"""Readability numbers of the source tree (issue 15): import cycles, long modules and functions,
untyped dict headers, unit-test lines per runtime source line.

Usage: ``python -m bench.code_metrics [--json]`` from the repository root.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "fedra"
UNIT = ROOT / "tests" / "unit"

MODULE_LIMIT = 500
FUNCTION_LIMIT = 80
UNTYPED = re.compile(r"dict\[str,\s*Any\]")


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "_proto" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module, package: str) -> set[str]:
    """Modules imported when the module is imported (not in functions, not TYPE_CHECKING)."""
    found: set[str] = set()
    body: list[ast.stmt] = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If) and not _is_type_checking(node):
            body.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            body.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                body.extend(handler.body)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("fedra")}


def import_cycles() -> list[list[str]]:
    """Strongly connected groups (more than one module) of the module import graph."""
    modules = {_module_name(p): p for p in _sources()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {m for m in _top_level_imports(tree, package) if m in modules and m != name}
    return [sorted(group) for group in _strongly_connected(graph) if len(group) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.add(top)
                if top == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def long_modules(limit: int = MODULE_LIMIT) -> dict[str, int]:
    lines = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in _sources()}
    return {name: n for name, n in sorted(lines.items()) if n > limit}


def long_functions(limit: int = FUNCTION_LIMIT) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found[f"{path.relative_to(SRC)}:{node.name}"] = length
    return found


def untyped_dicts(package: str | None = None) -> int:
    root = SRC / package if package else SRC
    return sum(len(UNTYPED.findall(p.read_text())) for p in root.rglob("*.py"))


def _lines(paths: list[Path]) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


def unit_test_ratio(package: str) -> float:
    source = _lines(sorted((SRC / package).rglob("*.py")))
    tests = _lines(sorted((UNIT / package).rglob("*.py")))
    return round(tests / source, 2) if source else 0.0


def _project_ratio() -> float:
    return round(_lines(sorted(UNIT.rglob("*.py"))) / _lines(_sources()), 2)


def report() -> dict[str, object]:
    cycles = import_cycles()
    return {
        "import_cycles": len(cycles),
        "cycle_modules": cycles,
        f"modules_over_{MODULE_LIMIT}_lines": long_modules(),
        f"functions_over_{FUNCTION_LIMIT}_lines": long_functions(),
        "dict_str_any_src": untyped_dicts(),
        "dict_str_any_runtime": untyped_dicts("runtime"),
        "runtime_unit_test_ratio": unit_test_ratio("runtime"),
        "project_unit_test_ratio": _project_ratio(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)
    numbers = report()
    if args.json:
        print(json.dumps(numbers, indent=2))
        return
    for key, value in numbers.items():
        if isinstance(value, dict | list) and value:
            print(f"{key}:")
            items = value.items() if isinstance(value, dict) else enumerate(value, 1)
            for name, detail in items:
                print(f"  {name}: {detail}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
