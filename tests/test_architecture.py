"""Architecture rules that keep the codebase navigable (STYLE.md 1 and 3)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from bench.code_metrics import import_cycles
from fedra.protocol import KINDS, SCRIPT_KINDS

SRC = Path(__file__).resolve().parent.parent / "src" / "fedra"

#: Each package may import only the packages listed (besides itself), layer by layer as in
#: DESIGN.md section 3 and docs/architecture.md: core; wire and the typed messages; transport;
#: the pure packages; infrastructure; the job-side apps; the runtime; the tools on top.
ALLOWED: dict[str, set[str]] = {
    # core: the domain (models, tasks, job specs and statuses, admin declarations), no OS
    "core": set(),
    # wire: bytes, and every typed message between processes
    "wire": {"core"},
    "protocol": {"core", "wire"},
    # transport: gRPC with mutual TLS, Unix sockets, in memory; one Connection interface
    "transport": {"core", "wire", "pki"},
    # pure: no sockets, no files
    "he": {"core"},  # homomorphic encryption: CKKS keys and encrypted params (TenSEAL)
    "secagg": {"core"},  # secure aggregation protocol (pure): masks, Shamir shares, messages
    "filters": {"core", "he"},
    "aggregators": {"core", "filters", "he"},  # filters: the privacy accountant (dp_gaussian)
    "workflows": {"core", "aggregators", "secagg"},
    "scheduler": {"core"},
    # infrastructure: certificates, the job store, the overseer, the host side of a process
    "pki": {"core"},
    "jobstore": {"core"},
    "host": {"core"},
    "overseer": {"core", "pki", "host"},
    # job-side apps: the server-side app of a job, the client side, the job folder
    "serverapp": {"core", "wire", "transport", "aggregators", "workflows", "he"},
    "client": {"core", "wire", "transport", "protocol", "filters", "secagg"},
    "job": {"core", "client", "serverapp", "workflows", "filters"},
    # runtime: the server and site processes and their job processes
    "runtime": {
        "core",
        "pki",
        "wire",
        "jobstore",
        "host",
        "transport",
        "protocol",
        "serverapp",
        "client",
        "job",
        "workflows",
        "filters",
        "scheduler",
        "overseer",
    },
    # tools on top
    "simulator": {"core", "client", "serverapp", "job", "filters"},
    "admin": {"core", "pki", "wire", "transport", "protocol", "job", "overseer"},
    "poc": {"core", "pki", "host", "runtime", "he"},
    "provision": {"core", "pki", "poc", "runtime", "overseer", "he", "jobstore"},
    "cli": {"core", "job", "simulator", "admin", "poc", "provision", "runtime", "pki", "overseer"},
}
TOP_LEVEL = {"__init__"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "fedra" and len(parts) > 1:
                found.add(parts[1])
    return found


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def _packages() -> list[str]:
    return sorted(p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def test_every_package_has_a_layer() -> None:
    assert set(_packages()) == set(ALLOWED), "add new packages to ALLOWED with their layer"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    for path in sorted((SRC / package).rglob("*.py")):
        if "_proto" in path.parts:
            continue
        used = _imports(path) - {package} - TOP_LEVEL
        illegal = used - ALLOWED[package]
        assert not illegal, f"{path.relative_to(SRC)} imports {sorted(illegal)}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_facade_exports_are_sorted_and_real(package: str) -> None:
    module = importlib.import_module(f"fedra.{package}")
    exported = getattr(module, "__all__", None)
    if package == "cli":
        return
    assert exported is not None, f"fedra.{package} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"fedra.{package}.__all__ unsorted"
    for name in exported:
        assert hasattr(module, name), f"fedra.{package}.__all__ names missing {name}"


def test_modules_stay_small() -> None:
    too_long = {
        str(p.relative_to(SRC)): n
        for p in SRC.rglob("*.py")
        if "_proto" not in p.parts and (n := len(p.read_text().splitlines())) > 800
    }
    assert not too_long, f"split these modules by concept: {too_long}"


def test_nothing_unpickles_or_evals() -> None:
    banned = re.compile(
        r"import pickle|pickle\.loads?\(|\beval\(|\bexec\(|yaml\.load\(|allow_pickle=True"
        r"|__import__\(|import marshal|import shelve"
    )
    offenders = [
        f"{p.relative_to(SRC)}: {m.group(0)}"
        for p in SRC.rglob("*.py")
        if "_proto" not in p.parts
        for m in banned.finditer(p.read_text())
    ]
    assert not offenders, offenders


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, f"modules that import each other (import a sibling module instead): {cycles}"


#: Where envelopes may be built: the typed messages, and the layers below them.
ENVELOPE_MAKERS = ("protocol", "wire", "transport")
MESSAGE_KINDS = {*KINDS, *SCRIPT_KINDS}


def _envelope_calls(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "Envelope":
                lines.append(node.lineno)
    return lines


def _kind_literals(tree: ast.AST) -> list[int]:
    """Lines comparing a message's ``kind`` with a string (routing by string kind)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            kinds = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
            texts = any(isinstance(s, ast.Constant) and s.value in MESSAGE_KINDS for s in sides)
            if kinds and texts:
                lines.append(node.lineno)
    return lines


def test_envelopes_are_built_only_from_typed_messages() -> None:
    """Every message between Fedra's processes is a struct of fedra.protocol (issue 15): no
    other module builds an envelope or routes on a string kind."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        if "_proto" in path.parts or path.relative_to(SRC).parts[0] in ENVELOPE_MAKERS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if lines := _envelope_calls(tree) + _kind_literals(tree):
            found[str(path.relative_to(SRC))] = lines
    assert not found, f"build messages with fedra.protocol.encode: {found}"
