"""open_store: the job store a server's configuration names, and clear errors for bad ones."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from fedra.core import ConfigError
from fedra.jobstore import PostgresJobStore, SqliteJobStore, StoreConfig, open_store

META: dict[str, Any] = {"name": "hello", "deploy_map": {"app": ["@ALL"]}}
SOURCE = "startup/fed_server.json: job_store"


def test_no_config_is_sqlite_in_the_default_folder(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "store")
    try:
        assert isinstance(store, SqliteJobStore)
        assert store.root == tmp_path / "store"
        job = store.create(META, b"zip", "alice").job_id
        assert (tmp_path / "store" / "jobs" / job / "job.zip").is_file()
    finally:
        store.close()


def test_sqlite_in_a_named_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "fedra"
    config = {"backend": "sqlite", "path": str(shared), "timeout": 5}
    assert StoreConfig.parse(config, tmp_path / "default") == StoreConfig(
        "sqlite", shared, timeout=5.0
    )
    store = open_store(config, tmp_path / "default")
    try:
        assert isinstance(store, SqliteJobStore)
        assert store.path == shared / "jobs.db"
        assert not (tmp_path / "default").exists()
    finally:
        store.close()


def test_postgres_by_dsn(pg_schema: tuple[str, str], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    config = {"backend": "postgres", "dsn": dsn, "schema": schema, "path": str(tmp_path / "f")}
    store = open_store(config, tmp_path / "default")
    try:
        assert isinstance(store, PostgresJobStore)
        assert store.schema == schema
        assert store.root == tmp_path / "f"
        job = store.create(META, b"zip", "alice").job_id
        assert store.job_zip(job) == b"zip"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "expected a JSON object"),
        ({"backend": "mysql"}, r"backend: expected one of \['postgres', 'sqlite'\], got 'mysql'"),
        ({"backend": "memory"}, "backend: expected one of"),
        ({"backend": "sqlite", "dsn": "host=x"}, r"unknown keys \['dsn'\]"),
        ({"pth": "/x"}, r"unknown keys \['pth'\]"),
        ({"path": "relative/store"}, "path: expected an absolute folder path"),
        ({"path": 3}, "path: expected an absolute folder path"),
        ({"timeout": 0}, "timeout: expected a number of seconds > 0"),
        ({"timeout": "30"}, "timeout: expected a number of seconds > 0"),
        ({"timeout": True}, "timeout: expected a number of seconds > 0"),
        ({"backend": "postgres"}, "dsn: expected a PostgreSQL connection string"),
        ({"backend": "postgres", "dsn": "  "}, "dsn: expected a PostgreSQL connection string"),
        ({"backend": "postgres", "dsn": 5}, "dsn: expected a PostgreSQL connection string"),
        ({"backend": "postgres", "dsn": "host=x =y"}, "invalid PostgreSQL DSN"),
        ({"backend": "postgres", "dsn": "host=x", "schema": "A-b"}, "invalid PostgreSQL schema"),
    ],
)
def test_bad_configs_name_the_source_and_the_key(tmp_path: Path, config: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_store(config, tmp_path, source=SOURCE)
    assert str(caught.value).startswith(SOURCE + ": ")
    assert list(tmp_path.iterdir()) == []


def test_postgres_without_psycopg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg.conninfo", None)
    with pytest.raises(ConfigError, match="needs psycopg 3") as caught:
        open_store({"backend": "postgres", "dsn": "host=db"}, tmp_path)
    assert caught.value.hint == "pip install 'fedra[postgres]'"
