"""project.yml: loading into frozen dataclasses, and errors that name file, line and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.provision import (
    SAMPLE_PROJECT,
    Admin,
    Client,
    Overseer,
    ProjectError,
    Server,
    load_project,
    parse_project,
)


def error(text: str) -> ProjectError:
    with pytest.raises(ProjectError) as info:
        parse_project(text, "project.yml")
    return info.value


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def test_valid_project_loads_into_frozen_dataclasses(project_text: str) -> None:
    project = parse_project(project_text)
    assert project.name == "demo"
    assert project.description == "a test project"
    assert project.docker_image is None
    assert project.servers == (Server("server1", "acme", 9002, 9003, enable_byoc=True),)
    assert project.clients == (Client("site-1", "acme", True), Client("site-2", "other"))
    assert project.admins[1] == Admin("member@other.org", "other", "member")
    assert project.overseer is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.name = "x"  # type: ignore[misc]


def test_defaults_for_ports_byoc_and_overseer() -> None:
    text = """\
api_version: 1
name: p
participants:
  - {name: srv, type: server, org: o}
  - {name: ovs, type: overseer, org: o}
  - {name: s, type: client, org: o}
"""
    project = parse_project(text)
    assert project.primary == Server("srv", "o", 8002, 8003, enable_byoc=False)
    assert project.overseer == Overseer("ovs", "o", "https", "/api/v1", 8443)
    assert project.clients[0].enable_byoc is False


def test_the_sample_is_valid(tmp_path: Path) -> None:
    (tmp_path / "project.yml").write_text(SAMPLE_PROJECT)
    project = load_project(tmp_path / "project.yml")
    names = [p.name for p in project.participants]
    assert names[:5] == ["overseer", "server1", "server2", "site-1", "site-2"]
    assert {a.role for a in project.admins} == {"project_admin", "lead"}
    assert project.source == tmp_path / "project.yml"


def test_bad_port_names_file_line_and_key(project_text: str) -> None:
    text = project_text.replace("fed_learn_port: 9002", "fed_learn_port: abc")
    err = error(text)
    line = line_of(text, "fed_learn_port")
    assert str(err) == (
        f"project.yml:{line}: participants[0].fed_learn_port: "
        "expected an integer 1-65535, got 'abc'"
    )
    assert (err.file, err.line, err.key) == ("project.yml", line, "participants[0].fed_learn_port")
    assert isinstance(err, ConfigError)
    assert err.exit_code == 2


@pytest.mark.parametrize("value", ["0", "65536", "true", "9002.5", "[1]"])
def test_ports_must_be_integers_in_range(project_text: str, value: str) -> None:
    text = project_text.replace("admin_port: 9003", f"admin_port: {value}")
    err = error(text)
    assert err.key == "participants[0].admin_port"
    assert err.line == line_of(text, "admin_port")


def test_unknown_participant_key_is_named_with_its_line(project_text: str) -> None:
    text = project_text.replace(
        "    enable_byoc: true\n", "    enable_byoc: true\n    gpus: 2\n", 1
    )
    err = error(text)
    assert err.line == line_of(text, "gpus")
    assert err.key == "participants[0].gpus"
    assert "unknown key for a server" in str(err)
    assert "fed_learn_port" in str(err)


def test_unknown_project_key(project_text: str) -> None:
    text = project_text + "builders: []\n"
    err = error(text)
    assert (err.line, err.key) == (line_of(text, "builders"), "builders")
    assert "unknown key" in str(err)


def test_key_of_another_type_is_unknown(project_text: str) -> None:
    text = project_text.replace("    role: member", "    role: member\n    enable_byoc: true")
    err = error(text)
    assert err.key == "participants[4].enable_byoc"
    assert "unknown key for an admin" in str(err)


def test_duplicate_name(project_text: str) -> None:
    text = project_text.replace("name: site-2", "name: Site-1")
    err = error(text)
    assert err.line == line_of(text, "name: Site-1")
    assert err.key == "participants[2].name"
    assert "'Site-1' is already used by participants[1]" in str(err)
    assert f"(line {line_of(text, 'name: site-1')})" in str(err)


def test_server_ports_must_differ(project_text: str) -> None:
    text = project_text.replace("admin_port: 9003", "admin_port: 9002")
    err = error(text)
    assert (err.line, err.key) == (line_of(text, "admin_port"), "participants[0].admin_port")
    assert "other than fed_learn_port (9002)" in str(err)


def test_servers_sharing_a_host_need_distinct_ports(project_text: str) -> None:
    second = """\
  - name: server2
    type: server
    org: acme
    host: localhost
    fed_learn_port: 9102
    admin_port: 9002
"""
    text = project_text.replace(
        "    enable_byoc: true\n", "    enable_byoc: true\n    host: 127.0.0.1\n", 1
    )
    text += second
    err = error(text)
    assert err.key == "participants[5].admin_port"
    assert err.line == line_of(text, "admin_port: 9002")
    assert "9002 is the fed_learn_port of 'server1'" in str(err)


def test_servers_on_different_hosts_may_share_ports(project_text: str) -> None:
    text = project_text + (
        "  - {name: server2, type: server, org: acme, fed_learn_port: 9002, admin_port: 9003}\n"
    )
    assert [s.name for s in parse_project(text).servers] == ["server1", "server2"]


def test_overseer_port_clashes_with_a_server_on_its_host(project_text: str) -> None:
    text = project_text + "  - {name: ovs, type: overseer, org: acme, host: server1, port: 9003}\n"
    err = error(text)
    assert err.key == "participants[5].port"
    assert "admin_port of 'server1'" in str(err)


def test_bad_role(project_text: str) -> None:
    text = project_text.replace("role: member", "role: superuser")
    err = error(text)
    assert (err.line, err.key) == (line_of(text, "role: superuser"), "participants[4].role")
    assert "expected one of lead, member, org_admin, project_admin, got 'superuser'" in str(err)


def test_missing_server(project_text: str) -> None:
    text = project_text.replace("    type: server\n", "    type: client\n").replace(
        "    fed_learn_port: 9002\n    admin_port: 9003\n", ""
    )
    err = error(text)
    assert err.key == "participants"
    assert "expected at least one server" in str(err)
    assert err.line == line_of(text, "name: server1")


def test_missing_required_key(project_text: str) -> None:
    text = project_text.replace("    org: other\n    role: member\n", "    role: member\n")
    err = error(text)
    assert err.key == "participants[4].org"
    assert "missing; this key is required" in str(err)
    assert err.line == line_of(text, "name: member@other.org")


def test_admin_names_look_like_email(project_text: str) -> None:
    text = project_text.replace("name: member@other.org", "name: member")
    err = error(text)
    assert err.key == "participants[4].name"
    assert "an e-mail address" in str(err)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x" * 65, "a b"])
def test_site_names_are_safe_folder_names(project_text: str, name: str) -> None:
    err = error(project_text.replace("name: site-2", f"name: '{name}'"))
    assert err.key == "participants[2].name"


def test_server_names_are_host_names(project_text: str) -> None:
    err = error(project_text.replace("name: server1", "name: server_1"))
    assert err.key == "participants[0].name"
    assert "a host name" in str(err)


def test_bad_type(project_text: str) -> None:
    err = error(project_text.replace("type: client", "type: worker", 1))
    assert err.key == "participants[1].type"
    assert "expected one of overseer, server, client, admin" in str(err)


def test_api_version_and_docker_image(project_text: str) -> None:
    assert error(project_text.replace("api_version: 1", "api_version: 3")).key == "api_version"
    err = error(project_text + "docker_image: 'bad image; rm -rf /'\n")
    assert err.key == "docker_image"
    image = parse_project(project_text + "docker_image: ghcr.io/acme/fedra:1.2\n").docker_image
    assert image == "ghcr.io/acme/fedra:1.2"


def test_duplicate_yaml_key(project_text: str) -> None:
    text = project_text.replace("    org: other\n", "    org: other\n    org: again\n", 1)
    err = error(text)
    assert err.line == line_of(text, "org: again")
    assert "duplicate key" in str(err)


def test_anchors_and_python_tags_are_refused(project_text: str) -> None:
    aliased = project_text.replace("org: acme", "org: &o acme", 1).replace(
        "org: other", "org: *o", 1
    )
    err = error(aliased)
    assert "anchors and aliases" in str(err)
    assert err.line == line_of(aliased, "org: *o")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "anchors and aliases" in str(error(laughs))
    tagged = project_text.replace(
        "description: a test project", "description: !!python/object/apply:os.system ['true']"
    )
    err = error(tagged)
    assert err.line == line_of(tagged, "description")


def test_invalid_yaml_and_empty_file(tmp_path: Path) -> None:
    err = error("name: [unclosed\nparticipants: []\n")
    assert err.line is not None
    assert "invalid YAML" in str(err)
    (tmp_path / "project.yml").write_text("# nothing here\n")
    err = error("")
    assert "empty" in str(err)
    with pytest.raises(ProjectError, match="file not found"):
        load_project(tmp_path / "missing.yml")
    with pytest.raises(ProjectError, match=r"project\.yml: the file is empty"):
        load_project(tmp_path / "project.yml")


def test_participants_must_be_a_list_of_mappings(project_text: str) -> None:
    head = project_text.split("participants:", maxsplit=1)[0]
    assert error(head + "participants: []\n").key == "participants"
    assert error(head + "participants:\n  - just-a-name\n").key == "participants[0]"


def test_job_store_keys_are_checked_with_their_line(project_text: str) -> None:
    text = project_text.replace(
        "    enable_byoc: true\n", "    enable_byoc: true\n    job_store:\n      backnd: x\n", 1
    )
    err = error(text)
    assert (err.line, err.key) == (line_of(text, "backnd"), "participants[0].job_store.backnd")
    assert "unknown key (expected one of: backend, path, dsn, schema, timeout)" in str(err)


def test_the_sample_servers_share_a_job_store_so_they_can_fail_over(tmp_path: Path) -> None:
    (tmp_path / "project.yml").write_text(SAMPLE_PROJECT)
    project = load_project(tmp_path / "project.yml")
    assert project.overseer is not None and len(project.servers) == 2
    stores = {server.job_store for server in project.servers}
    assert len(stores) == 1 and None not in stores
    (store,) = stores
    assert store is not None and store.backend == "sqlite" and store.path == "/srv/fedra/store"
