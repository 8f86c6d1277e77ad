"""The throwaway PostgreSQL server of the tests: found or a clear error, always cleaned up."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from tests.postgres_server import (
    BIN_ENV,
    PostgresUnavailable,
    alive,
    find_bin_dir,
    postgres_server,
)


def test_missing_binaries_are_an_error_saying_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "initdb").write_text("#!/bin/sh\n")  # not executable, and no pg_ctl at all
    for env in ({BIN_ENV: str(tmp_path)}, {BIN_ENV: str(tmp_path / "missing")}):
        with pytest.raises(PostgresUnavailable) as caught:
            find_bin_dir(env)
        message = str(caught.value)
        assert "initdb, pg_ctl, postgres" in message
        assert "apt-get install -y postgresql" in message
        assert "scripts/install-postgres.sh" in message
        assert str(tmp_path) in message


def test_the_installed_binaries_are_found() -> None:
    folder = find_bin_dir({"PATH": os.environ.get("PATH", "")})
    assert all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres"))


def test_the_server_is_stopped_and_removed_even_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), postgres_server() as server:
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid = server.postmaster_pid()
        folder = server.folder
        assert pid is not None and folder.is_dir()
        raise RuntimeError("the test failed")
    assert not folder.exists()
    assert not alive(pid)
