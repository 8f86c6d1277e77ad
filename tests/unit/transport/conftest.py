"""Fixtures of the transport tests: test certificates, and each transport's connection pairs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from certs_helper import Federation, make_federation
from transport_helpers import Link, open_link


@pytest.fixture(scope="session")
def federation() -> Federation:
    """A CA with server, site and admin certificates (made once per test session)."""
    return make_federation()


@pytest.fixture(params=["grpc", "memory", "local"])
def link(request: pytest.FixtureRequest, federation: Federation) -> Iterator[Link]:
    """One connection over each transport (gRPC, in memory, local channel); closed and stopped
    afterwards."""
    opened = open_link(request.param, federation)
    yield opened
    opened.client.close()
    opened.server.stop(grace=0.5)
