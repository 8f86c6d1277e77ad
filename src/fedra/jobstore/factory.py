"""Open the job store a server's configuration asks for: SQLite (default) or PostgreSQL.

The configuration is one JSON object, e.g. the ``job_store`` key of ``fed_server.json``::

    {"backend": "sqlite", "path": "/srv/fedra/store"}
    {"backend": "postgres", "dsn": "host=db.example.org dbname=fedra user=fedra",
     "path": "/mnt/shared/fedra-store", "schema": "fedra", "timeout": 30}

``path`` is the folder for the jobs' zips and run folders (and SQLite's database file); it
defaults to the server's own store folder. With several servers it must be the same shared
folder for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedra.core import ConfigError
from fedra.jobstore.postgres import DEFAULT_SCHEMA, PostgresJobStore, check_schema, describe_dsn
from fedra.jobstore.protocol import JobStore
from fedra.jobstore.sqlite import SqliteJobStore

#: The backends a server can be configured with.
BACKENDS = ("postgres", "sqlite")
_KEYS = {
    "sqlite": {"backend", "path", "timeout"},
    "postgres": {"backend", "path", "timeout", "dsn", "schema"},
}


@dataclass(frozen=True)
class StoreConfig:
    """A validated job store configuration."""

    backend: str
    path: Path
    dsn: str | None = None
    schema: str = DEFAULT_SCHEMA
    timeout: float = 30.0

    @classmethod
    def parse(
        cls, data: Mapping[str, Any] | None, default_path: Path, source: str = "job_store"
    ) -> StoreConfig:
        """Validate ``data`` (None: SQLite in ``default_path``); errors name ``source`` and key."""
        if data is None:
            return cls("sqlite", Path(default_path))
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object, got {data!r}")
        backend = data.get("backend", "sqlite")
        if backend not in BACKENDS:
            raise ConfigError(
                f"{source}: backend: expected one of {list(BACKENDS)}, got {backend!r}"
            )
        unknown = sorted(set(data) - _KEYS[backend])
        if unknown:
            raise ConfigError(
                f"{source}: unknown keys {unknown} for backend {backend!r} "
                f"(expected some of {sorted(_KEYS[backend])})"
            )
        path = Path(default_path)
        if "path" in data:
            raw = data["path"]
            if not isinstance(raw, str) or not raw or not Path(raw).is_absolute():
                raise ConfigError(f"{source}: path: expected an absolute folder path, got {raw!r}")
            path = Path(raw)
        timeout = data.get("timeout", 30.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(
                f"{source}: timeout: expected a number of seconds > 0, got {timeout!r}"
            )
        if backend == "sqlite":
            return cls("sqlite", path, timeout=float(timeout))
        dsn = data.get("dsn")
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigError(
                f"{source}: dsn: expected a PostgreSQL connection string "
                "('host=... dbname=... user=...' or postgresql://...), got "
                + ("nothing" if dsn is None else type(dsn).__name__)
            )
        schema = data.get("schema", DEFAULT_SCHEMA)
        try:
            check_schema(schema)
            describe_dsn(dsn)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        except ImportError as exc:
            error = ConfigError(f"{source}: the postgres backend needs psycopg 3 (not installed)")
            error.hint = "pip install 'fedra[postgres]'"
            raise error from exc
        return cls("postgres", path, dsn=dsn, schema=schema, timeout=float(timeout))


def open_store(
    config: Mapping[str, Any] | StoreConfig | None,
    default_path: Path,
    *,
    source: str = "job_store",
) -> JobStore:
    """Open the job store ``config`` describes (None: SQLite in ``default_path``).

    A mapping is validated first (:meth:`StoreConfig.parse`); bad values raise
    :class:`~fedra.core.ConfigError` naming ``source`` and the key.
    """
    if not isinstance(config, StoreConfig):
        config = StoreConfig.parse(config, default_path, source)
    if config.backend == "postgres":
        if config.dsn is None:
            raise ConfigError(f"{source}: dsn: the postgres backend needs a connection string")
        return PostgresJobStore(
            config.dsn, config.path, schema=config.schema, timeout=config.timeout
        )
    return SqliteJobStore(config.path, timeout=config.timeout)
