"""POC kits have what provisioned kits have in ``local/``: the editable ``*.default`` files."""

from __future__ import annotations

import json
from pathlib import Path

from fedra.pki import verify_kit
from fedra.poc import prepare
from fedra.runtime.admin_rights import SERVER_DEFAULT, load_server_policy
from fedra.runtime.authz import DEFAULT_POLICY, load_policy

LOCAL_FILES = {
    "authorization.json.default",
    "privacy.json.default",
    "resources.json.default",
    "log_config.json.default",
    "network.json.default",
}


def test_poc_kits_have_the_local_default_files(tmp_path: Path) -> None:
    layout = prepare(tmp_path / "poc", 2, fed_port=18002, admin_port=18003)
    for kit in (layout.server, *(layout.site(s) for s in layout.sites)):
        local = kit / "local"
        assert {p.name for p in local.iterdir()} == LOCAL_FILES, kit.name
        for name in LOCAL_FILES:
            json.loads((local / name).read_text())
        verify_kit(kit)  # local/ is not signed: the kit still verifies
    site = json.loads((layout.site("site-1") / "local" / "authorization.json.default").read_text())
    assert site["site"] == "site-1"
    resources = json.loads((layout.site("site-2") / "local" / "resources.json.default").read_text())
    assert resources["num_gpus"] == 0


def test_the_poc_defaults_change_no_decision(tmp_path: Path) -> None:
    """A POC runs jobs' own code as before: the written defaults are the built-in ones."""
    layout = prepare(tmp_path / "poc", 1, fed_port=18002, admin_port=18003)
    roles, source = load_policy(layout.site("site-1"))
    assert source == "local/authorization.json.default"
    for role, rights in DEFAULT_POLICY.items():
        assert {k: roles[role][k] for k in rights} == rights, role
    server_roles, server_source = load_server_policy(layout.server)
    assert server_source.endswith("authorization.json.default")
    for role, rights in SERVER_DEFAULT.items():
        assert {k: server_roles[role][k] for k in rights} == rights, role
