"""Fixtures of the admin tests: a fake server, a session on it, an admin kit on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_fakes import FakeConnection, FakeServer, write_kit

from fedra.admin import AdminKit, Session


@pytest.fixture
def kit_dir(tmp_path: Path) -> Path:
    return write_kit(tmp_path / "kit")


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def connection(server: FakeServer) -> FakeConnection:
    return FakeConnection(server)


@pytest.fixture
def session(connection: FakeConnection, kit_dir: Path) -> Iterator[Session]:
    with Session(connection, kit=AdminKit.load(kit_dir)) as s:
        yield s


@pytest.fixture
def fake_connect(
    monkeypatch: pytest.MonkeyPatch, connection: FakeConnection
) -> list[dict[str, Any]]:
    """Make ``fedra.transport.connect`` hand out the fake connection; record its calls."""
    import fedra.transport

    calls: list[dict[str, Any]] = []

    def connect(target: str, **kwargs: Any) -> FakeConnection:
        calls.append({"target": target, **kwargs})
        return connection

    monkeypatch.setattr(fedra.transport, "connect", connect, raising=False)
    return calls
