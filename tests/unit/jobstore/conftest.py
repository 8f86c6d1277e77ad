"""Fixtures of the job store tests: a throwaway PostgreSQL server, fresh schemas and databases.

The server starts the first time a test asks for it (``pg_schema``, ``pg_dsn``) and stops at
the end of the session, even when tests fail. Without the PostgreSQL binaries those tests FAIL
and say what to install (``scripts/install-postgres.sh``): a missing backend is never skipped
silently.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.postgres_server import (
    PostgresServer,
    PostgresUnavailable,
    find_bin_dir,
    postgres_server,
)

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test session (stopped and removed at its end)."""
    try:
        find_bin_dir()
        missing = None
    except PostgresUnavailable as exc:
        missing = str(exc)
    if missing is not None:
        pytest.fail(f"the PostgreSQL job store tests need a server: {missing}", pytrace=False)
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_shared_dsn(pg_server: PostgresServer) -> str:
    """The DSN of one database of the session, where each test gets a schema of its own."""
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE fedra_tests")
    return pg_server.dsn("fedra_tests")


@pytest.fixture
def pg_schema(pg_shared_dsn: str) -> Iterator[tuple[str, str]]:
    """A DSN and a schema name not used before (dropped after the test): a cheap empty store."""
    schema = f"t{next(_counter)}"
    try:
        yield pg_shared_dsn, schema
    finally:
        with psycopg.connect(pg_shared_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of a new, empty database on the session's server (dropped after the test)."""
    name = f"fedra_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.dsn(name)
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
