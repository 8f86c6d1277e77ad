"""Fixtures of the provisioning tests: a small project file, and a project provisioned once."""

from __future__ import annotations

import pytest

from fedra.provision import ProvisionResult, load_project, provision

#: A small valid project; tests edit it line by line for the error cases.
PROJECT = """\
api_version: 1
name: demo
description: a test project
participants:
  - name: server1
    type: server
    org: acme
    fed_learn_port: 9002
    admin_port: 9003
    enable_byoc: true
  - name: site-1
    type: client
    org: acme
    enable_byoc: true
  - name: site-2
    type: client
    org: other
  - name: admin@acme.org
    type: admin
    org: acme
    role: project_admin
  - name: member@other.org
    type: admin
    org: other
    role: member
"""


@pytest.fixture
def project_text() -> str:
    """The text of a small valid project.yml (server1, site-1, site-2, two admins)."""
    return PROJECT


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> ProvisionResult:
    """The small project, with an overseer and a docker image, provisioned once."""
    root = tmp_path_factory.mktemp("provisioned")
    text = PROJECT.replace("participants:\n", _OVERSEER, 1).replace(
        "description: a test project\n",
        "description: a test project\ndocker_image: registry.example.org/fedra:1.0\n",
    )
    (root / "project.yml").write_text(text)
    return provision(load_project(root / "project.yml"), root / "workspace")


_OVERSEER = """\
participants:
  - name: overseer.acme.org
    type: overseer
    org: acme
    protocol: https
    api_root: /api/v1
    port: 8443
"""
