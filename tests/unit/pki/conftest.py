"""Shared fixtures for the PKI tests: two unrelated project CAs."""

from __future__ import annotations

import pytest

from fedra.pki import CertKey, create_ca


@pytest.fixture(scope="module")
def ca() -> CertKey:
    """The project's root CA."""
    return create_ca("demo-project")


@pytest.fixture(scope="module")
def other_ca() -> CertKey:
    """A root CA of another project, trusted by nobody in this one."""
    return create_ca("other-project")
