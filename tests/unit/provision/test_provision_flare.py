"""FLARE 2.x project files: converted to Fedra's, provisioned into kits that verify, and
refused with the line when Fedra cannot map them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.provision import (
    Admin,
    Client,
    Overseer,
    ProjectError,
    Server,
    parse_any,
    parse_project,
    provision,
    read_project,
    verify_kit,
)
from fedra.provision.project import JobStoreEntry
from fedra.provision.yamlfile import MAX_VALUES, parse_yaml
from tests.unit.provision.flare_samples import ARTICLE, FLARE_2X, FLARE_21


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def error(text: str) -> ProjectError:
    with pytest.raises(ProjectError) as info:
        parse_any(text, "flare.yml")
    return info.value


def notes(text: str) -> list[str]:
    source = parse_any(text, "flare.yml")
    assert source.flare is not None
    return [str(note) for note in source.flare.notes]


def test_the_article_project_maps_participants_roles_ports_overseer_and_docker() -> None:
    source = parse_any(ARTICLE, "flare.yml")
    project = source.project
    assert source.flare is not None and source.flare.api_version == 3
    assert project.name == "article_project"
    assert project.docker_image == "riverside-fl:1.0"
    assert project.overseer == Overseer("overseer", "riverside", "https", "/api/v1", 8443)
    store = JobStoreEntry(backend="sqlite", path="/srv/riverside/snapshots")
    assert project.servers == (
        Server("server1", "riverside", 8002, 8003, enable_byoc=True, job_store=store),
        Server("server2", "riverside", 8102, 8103, enable_byoc=True, job_store=store),
    )
    assert project.clients == (
        Client("site-1", "riverside", True),
        Client("site-2", "hillside", True),
    )
    assert project.admins == (Admin("owner@riverside.test", "riverside", "project_admin"),)
    said = notes(ARTICLE)
    assert f"line {line_of(ARTICLE, '- super')}: participants[5].roles: ['super'] is " in " ".join(
        said
    )
    for builder in ("workspace.WorkspaceBuilder", "template.TemplateBuilder", "cert.CertBuilder"):
        line = line_of(ARTICLE, builder)
        assert any(
            n.startswith(f"line {line}: nvflare.lighter.impl.{builder}: skipped") for n in said
        )


def test_flare_21_sample_shape(tmp_path: Path) -> None:
    source = parse_any(FLARE_21, "flare.yml")
    project = source.project
    assert [p.name for p in project.servers] == ["fl1.lakeside.test", "fl2.lakeside.test"]
    # job_manager's uri_root wins over the snapshot folder: the servers share it.
    assert {s.job_store for s in project.servers} == {
        JobStoreEntry(backend="sqlite", path="/srv/lakeside/jobs")
    }
    assert project.admins[0].role == "project_admin"
    assert project.clients[1].enable_byoc is False
    said = " | ".join(notes(FLARE_21))
    for skipped in ("AuthPolicyBuilder", "DistributionBuilder", "SignatureBuilder"):
        assert f"{skipped}: skipped" in said
    assert "components.server: job_scheduler, job_manager, job_store: skipped" in said
    assert "components.client: resource_manager: skipped" in said
    assert "warning" not in said  # the servers share a job store: they can fail over


def test_a_later_2x_shape_anchors_docker_builder_and_sp_end_point() -> None:
    source = parse_any(FLARE_2X, "flare.yml")
    project = source.project
    assert project.docker_image == "hilltop/fl:2.0"
    assert project.overseer is None
    # sp_end_point names the server sites use: it comes first.
    assert [s.name for s in project.servers] == ["main.hilltop.test", "backup.hilltop.test"]
    main = project.servers[0]
    assert (main.fed_learn_port, main.admin_port) == (7102, 8003)
    assert [a.role for a in project.admins] == ["project_admin", "lead"]
    said = " | ".join(notes(FLARE_2X))
    assert f"line {line_of(FLARE_2X, 'site_parts: &')}: site_parts: YAML anchors" in said
    assert "participants[1].admin_port: not set; Fedra's admin port is a port of its own: 8003" in (
        said
    )
    assert "participants[2].listening_host: skipped" in said
    assert "participants[2].components: resource_manager: skipped" in said
    assert "base_image: skipped" in said
    assert "sp_end_point: main.hilltop.test is the first server" in said


def test_kits_from_a_flare_project_verify_and_carry_what_was_mapped(tmp_path: Path) -> None:
    source = parse_any(FLARE_21, "flare.yml")
    result = provision(source.project, tmp_path / "ws", project_text=source.text)
    for participant in source.project.participants:
        verify_kit(result.kits[participant.name])
    server = json.loads((result.kits["fl2.lakeside.test"] / "startup/fed_server.json").read_text())
    assert server["job_store"] == {"path": "/srv/lakeside/jobs"}  # sqlite: the default
    assert server["overseer"]["port"] == 9443
    admin = json.loads((result.kits["chief@lakeside.test"] / "startup/fed_admin.json").read_text())
    assert admin["role"] == "project_admin"
    written = (result.prod / "project.yml").read_text()
    assert written.startswith("# Converted by `fedra provision` from the FLARE project file")
    assert parse_project(written) == parse_any(written).project == source.project


def test_the_converted_file_is_a_fedra_project_with_the_same_participants() -> None:
    for text in (ARTICLE, FLARE_21, FLARE_2X):
        source = parse_any(text, "flare.yml")
        assert parse_project(source.text) == source.project
        assert "api_version: 1\n" in source.text


def test_a_fedra_project_file_is_read_as_before(project_text: str, tmp_path: Path) -> None:
    (tmp_path / "project.yml").write_text(project_text)
    source = read_project(tmp_path / "project.yml")
    assert source.flare is None
    assert source.text == project_text
    assert source.project.source == tmp_path / "project.yml"


@pytest.mark.parametrize(
    ("old", "new", "needle", "key", "message"),
    [
        (
            "  - path: nvflare.lighter.impl.cert.CertBuilder\n",
            "  - path: mycompany.provision.VaultBuilder\n",
            "VaultBuilder",
            "builders[4].path",
            "unknown builder 'mycompany.provision.VaultBuilder': Fedra runs no builder code",
        ),
        (
            "    port: 9443\n",
            "    port: 9443\n    color: blue\n",
            "color: blue",
            "participants[0].color",
            "unknown key of a FLARE overseer",
        ),
        (
            "description: two hospitals and a coordinator\n",
            "description: x\nstudies: [a]\n",
            "studies:",
            "studies",
            "unknown key of a FLARE project",
        ),
        (
            "      config_folder: config\n",
            "      config_folder: config\n      lucky_number: 7\n",
            "lucky_number",
            "builders[2].args.lucky_number",
            "unknown key",
        ),
        (
            "    roles:\n      - super\n",
            "    roles:\n      - auditor\n",
            "auditor",
            "participants[5].roles",
            "expected one of super, proj_admin, project_admin",
        ),
        (
            "    roles:\n      - super\n",
            "    roles: [super, member]\n",
            "roles: [super",
            "participants[5].roles",
            "expected one role (Fedra gives an admin one)",
        ),
        (
            "  - name: south-clinic\n    type: client\n",
            "  - name: south-clinic\n    type: relay\n",
            "type: relay",
            "participants[4].type",
            "Fedra has no relays",
        ),
        (
            "        path: nvflare.ha.overseer_agent.HttpOverseerAgent\n",
            "        path: mycompany.ha.Agent\n",
            "mycompany.ha.Agent",
            "builders[2].args.overseer_agent.path",
            "expected nvflare.ha's HttpOverseerAgent or DummyOverseerAgent",
        ),
        (
            "    fed_learn_port: 9202\n",
            "    fed_learn_port: lots\n",
            "fed_learn_port: lots",
            "participants[2].fed_learn_port",
            "expected an integer 1-65535, got 'lots'",
        ),
    ],
)
def test_refusals_name_the_line_and_the_key(
    old: str, new: str, needle: str, key: str, message: str
) -> None:
    assert old in FLARE_21
    text = FLARE_21.replace(old, new, 1)
    err = error(text)
    assert (err.file, err.line, err.key) == ("flare.yml", line_of(text, needle), key), str(err)
    assert message in err.detail


def test_sp_end_point_must_name_a_server_with_its_port() -> None:
    text = FLARE_2X.replace("main.hilltop.test:7102:7103", "nowhere.test:7102:7103")
    err = error(text)
    assert (err.line, err.key) == (line_of(text, "sp_end_point"), "sp_end_point")
    assert "names no server of the project: 'nowhere.test'" in err.detail
    text = FLARE_2X.replace("main.hilltop.test:7102:7103", "main.hilltop.test:7002:7103")
    assert "expected the fed_learn_port of server main.hilltop.test (7102)" in error(text).detail
    assert "SERVER_NAME:FL_PORT:ADMIN_PORT" in error(FLARE_2X.replace(":7102:7103", "")).detail


def test_an_overseer_needs_api_version_3() -> None:
    err = error(FLARE_21.replace("api_version: 3", "api_version: 2"))
    assert (err.line, err.key) == (line_of(FLARE_21, "type: overseer"), "participants[0].type")


def test_ha_servers_without_a_shared_store_get_a_warning() -> None:
    text = ARTICLE.replace("              root_dir: /srv/riverside/snapshots\n", "")
    project = parse_any(text, "flare.yml").project
    assert {s.job_store for s in project.servers} == {None}
    said = " | ".join(notes(text))
    assert f"line {line_of(text, 'name: server1')}: warning: the servers share no job_store" in said


def test_the_he_builder_turns_homomorphic_encryption_on() -> None:
    text = FLARE_21.replace(
        "  - path: nvflare.lighter.impl.cert.CertBuilder\n",
        "  - path: nvflare.lighter.impl.cert.CertBuilder\n"
        "  - path: nvflare.lighter.impl.he.HEBuilder\n    args:\n      scheme: CKKS\n",
    )
    assert parse_any(text).project.homomorphic_encryption is True


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("api_version: 3\nname: x\nparticipants: [\n", 4, "invalid YAML"),
        ("api_version: 3\nname: x\nparticipants: 5\n", 3, "expected a list of participants"),
        ("api_version: 3\nname: x\nbuilders: {a: 1}\n", 3, "expected a list of builders"),
        ("api_version: 3\nname: x\nparticipants:\n  - just a name\n", 4, "expected a mapping"),
        ("api_version: 3\nname: x\nbuilders:\n  - args: {}\n", 4, "expected a builder's class"),
        ("api_version: 3\nname: x\na: &a [*a]\n", 3, "an alias refers to a value that contains"),
    ],
)
def test_malformed_files_are_refused_with_a_line(text: str, line: int, message: str) -> None:
    err = error(text)
    assert err.line == line, str(err)
    assert message in str(err)


def test_aliases_expand_within_a_bound_and_stay_refused_in_fedra_files() -> None:
    bomb = "api_version: 3\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6)
    )
    with pytest.raises(ProjectError, match=f"at most {MAX_VALUES} values"):
        parse_yaml(bomb, "flare.yml", aliases=True)
    fedra = "api_version: 1\nname: x\nx: &a 1\ny: *a\n"
    with pytest.raises(ProjectError, match="anchors and aliases are not supported"):
        parse_any(fedra)
