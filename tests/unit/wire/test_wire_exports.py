"""The public surface of fedra.wire and fedra.transport: sorted, complete, importable."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["fedra.wire", "fedra.transport"])
def test_exported_members(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    # isort-style order, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in exported:
        assert hasattr(module, name), name
    public = {n for n in vars(module) if not n.startswith("_")}
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    assert public - submodules - {"annotations"} == set(exported)
