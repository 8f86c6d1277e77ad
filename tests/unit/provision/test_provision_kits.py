"""Provisioning writes one signed kit (folder and zip) per participant, from one project CA."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from fedra.admin import AdminKit
from fedra.pki import Identity, identity_of, verify_issued_by
from fedra.provision import (
    ProvisionResult,
    load_project,
    parse_project,
    provision,
    verify_kit,
)
from fedra.runtime import ServerKit, SiteKit

SERVER_FILES = {
    "rootCA.pem",
    "server.crt",
    "server.key",
    "fed_server.json",
    "start.sh",
    "sub_start.sh",
    "stop_fl.sh",
    "docker.sh",
    "Dockerfile",
    "requirements.txt",
    "signature.json",
}
LOCAL_FILES = {
    "authorization.json.default",
    "privacy.json.default",
    "resources.json.default",
    "log_config.json.default",
    "network.json.default",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tree_of_the_provisioning(provisioned: ProvisionResult) -> None:
    prod = provisioned.prod
    assert prod.name == "prod_00"
    assert prod.parent.name == "demo"
    names = ["overseer.acme.org", "server1", "site-1", "site-2", "admin@acme.org"]
    names.append("member@other.org")
    assert sorted(provisioned.kits) == sorted(names)
    assert {p.name for p in prod.iterdir()} == (
        set(names) | {f"{n}.zip" for n in names} | {"project.yml"}
    )
    server = prod / "server1"
    assert {p.name for p in (server / "startup").iterdir()} == SERVER_FILES
    assert {p.name for p in (server / "local").iterdir()} == LOCAL_FILES
    site = prod / "site-1" / "startup"
    assert {p.name for p in site.iterdir()} == (
        SERVER_FILES - {"server.crt", "server.key", "fed_server.json"}
    ) | {"client.crt", "client.key", "fed_client.json"}
    admin = prod / "admin@acme.org"
    assert {p.name for p in admin.iterdir()} == {"startup"}
    assert {p.name for p in (admin / "startup").iterdir()} == {
        "rootCA.pem",
        "client.crt",
        "client.key",
        "fed_admin.json",
        "fl_admin.sh",
        "signature.json",
    }
    overseer = prod / "overseer.acme.org"
    assert {p.name for p in (overseer / "startup").iterdir()} == (
        SERVER_FILES - {"server.crt", "server.key", "fed_server.json"}
    ) | {"overseer.crt", "overseer.key", "fed_overseer.json"}
    assert {p.name for p in (overseer / "local").iterdir()} == {"overseer.json.default"}
    assert "startup/start.sh" in (overseer / "README.txt").read_text()


def test_private_keys_are_0600(provisioned: ProvisionResult) -> None:
    keys = sorted(provisioned.prod.rglob("*.key"))
    assert len(keys) == 6
    assert {mode(k) for k in keys} == {0o600}
    state = provisioned.prod.parent / "state"
    assert mode(state / "rootCA.key") == 0o600
    assert mode(state) == 0o700
    assert mode(provisioned.prod / "site-1" / "startup" / "start.sh") & 0o111


def test_every_kit_verifies(provisioned: ProvisionResult) -> None:
    for kit in provisioned.kits.values():
        verify_kit(kit)


def test_certificates_carry_identity_org_and_role(provisioned: ProvisionResult) -> None:
    prod = provisioned.prod
    ca = (prod.parent / "state" / "rootCA.pem").read_bytes()
    expected = {
        "server1/startup/server.crt": Identity("server1", "acme", "server"),
        "site-1/startup/client.crt": Identity("site-1", "acme", "client"),
        "site-2/startup/client.crt": Identity("site-2", "other", "client"),
        "admin@acme.org/startup/client.crt": Identity("admin@acme.org", "acme", "project_admin"),
        "member@other.org/startup/client.crt": Identity("member@other.org", "other", "member"),
        "overseer.acme.org/startup/overseer.crt": Identity("overseer.acme.org", "acme", "overseer"),
    }
    for path, identity in expected.items():
        pem = (prod / path).read_bytes()
        assert identity_of(pem) == identity, path
        verify_issued_by(pem, ca)
        assert (prod / path).parent.joinpath("rootCA.pem").read_bytes() == ca


def test_server_certificate_names_its_host_and_localhost(provisioned: ProvisionResult) -> None:
    pem = (provisioned.prod / "server1" / "startup" / "server.crt").read_bytes()
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert set(san.value.get_values_for_type(x509.DNSName)) == {"server1", "localhost"}
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_configs_are_what_the_processes_read(provisioned: ProvisionResult) -> None:
    prod = provisioned.prod
    server = ServerKit.load(prod / "server1")
    assert (server.name, server.org, server.host) == ("server1", "acme", "server1")
    assert (server.fed_port, server.admin_port) == (9002, 9003)
    site = SiteKit.load(prod / "site-2")
    assert (site.name, site.org, site.target, site.server_name) == (
        "site-2",
        "other",
        "server1:9002",
        "server1",
    )
    client = json.loads((prod / "site-2" / "startup" / "fed_client.json").read_text())
    assert client["servers"] == [
        {"name": "server1", "host": "server1", "fed_learn_port": 9002, "admin_port": 9003}
    ]
    assert client["overseer"]["port"] == 8443
    admin = AdminKit.load(prod / "member@other.org")
    assert (admin.name, admin.org, admin.role, admin.target) == (
        "member@other.org",
        "other",
        "member",
        "server1:9003",
    )
    overseer = json.loads(
        (prod / "overseer.acme.org" / "startup" / "fed_overseer.json").read_text()
    )
    assert {k: overseer[k] for k in ("protocol", "api_root", "port", "servers")} == {
        "protocol": "https",
        "api_root": "/api/v1",
        "port": 8443,
        "servers": ["server1"],
    }


def test_local_defaults(provisioned: ProvisionResult) -> None:
    prod = provisioned.prod

    def policy(name: str) -> dict[str, dict[str, str]]:
        path = prod / name / "local" / "authorization.json.default"
        return json.loads(path.read_text())["roles"]  # type: ignore[no-any-return]

    assert policy("site-1")["lead"]["byoc"] == "any"
    assert {rights["byoc"] for rights in policy("site-2").values()} == {"none"}
    assert policy("server1")["project_admin"]["byoc"] == "any"
    assert policy("site-2")["member"] == {
        "submit_job": "none",
        "manage_job": "none",
        "download_job": "none",
        "view": "any",
        "operate": "none",
        "byoc": "none",
    }
    for name in LOCAL_FILES:
        json.loads((prod / "site-1" / "local" / name).read_text())


def test_docker_files(provisioned: ProvisionResult) -> None:
    startup = provisioned.prod / "site-1" / "startup"
    docker = startup / "docker.sh"
    text = docker.read_text()
    assert "registry.example.org/fedra:1.0" in text
    assert '-v "$KIT:/workspace/site-1"' in text
    assert "startup/sub_start.sh" in text
    assert mode(docker) & 0o111
    assert "FROM ${BASE_IMAGE}" in (startup / "Dockerfile").read_text()
    assert "fedra==" in (startup / "requirements.txt").read_text()
    scripts = [startup / n for n in ("docker.sh", "start.sh", "sub_start.sh", "stop_fl.sh")]
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run(["shellcheck", *map(str, scripts)], check=True)


def test_no_docker_files_without_an_image(tmp_path: Path, project_text: str) -> None:
    result = provision(parse_project(project_text), tmp_path)
    assert not (result.kits["site-1"] / "startup" / "docker.sh").exists()
    assert not (result.kits["server1"] / "startup" / "Dockerfile").exists()


def test_zips_contain_the_folder(provisioned: ProvisionResult) -> None:
    for name, archive in provisioned.zips.items():
        assert archive == provisioned.prod / f"{name}.zip"
        with zipfile.ZipFile(archive) as z:
            names = set(z.namelist())
            files = {
                str(p.relative_to(provisioned.prod))
                for p in provisioned.kits[name].rglob("*")
                if p.is_file()
            }
            assert files <= names
            assert all(n.startswith(f"{name}/") for n in names)
            key = next(i for i in z.infolist() if i.filename.endswith(".key"))
            assert (key.external_attr >> 16) & 0o777 == 0o600


def test_unzipped_kit_verifies(provisioned: ProvisionResult, tmp_path: Path) -> None:
    with zipfile.ZipFile(provisioned.zips["site-1"]) as z:
        z.extractall(tmp_path)
    verify_kit(tmp_path / "site-1")


def test_second_provisioning_reuses_the_ca(tmp_path: Path, project_text: str) -> None:
    (tmp_path / "project.yml").write_text(project_text)
    first = provision(load_project(tmp_path / "project.yml"), tmp_path / "ws")
    second = provision(load_project(tmp_path / "project.yml"), tmp_path / "ws")
    assert (first.prod.name, second.prod.name) == ("prod_00", "prod_01")
    ca_first = (first.kits["site-1"] / "startup" / "rootCA.pem").read_bytes()
    ca_second = (second.kits["site-1"] / "startup" / "rootCA.pem").read_bytes()
    assert ca_first == ca_second == (tmp_path / "ws" / "demo" / "state" / "rootCA.pem").read_bytes()
    # A kit of the first provisioning and one of the second trust each other.
    verify_issued_by((second.kits["server1"] / "startup" / "server.crt").read_bytes(), ca_first)
    verify_issued_by((first.kits["site-2"] / "startup" / "client.crt").read_bytes(), ca_second)
    assert (second.prod / "project.yml").read_text() == project_text


def test_failed_provisioning_leaves_no_prod_folder(
    tmp_path: Path, project_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedra.provision.workspace as workspace

    def boom(*args: object, **kwargs: object) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(workspace, "zip_kit", boom)
    with pytest.raises(OSError, match="disk full"):
        provision(parse_project(project_text), tmp_path)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["state"]


def test_host_override_goes_into_configs_and_san(tmp_path: Path, project_text: str) -> None:
    text = project_text.replace(
        "    enable_byoc: true\n", "    enable_byoc: true\n    host: 10.1.2.3\n", 1
    )
    result = provision(parse_project(text), tmp_path)
    assert ServerKit.load(result.kits["server1"]).host == "10.1.2.3"
    site = SiteKit.load(result.kits["site-1"])
    assert (site.server_host, site.server_name) == ("10.1.2.3", "server1")
    pem = (result.kits["server1"] / "startup" / "server.crt").read_bytes()
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "10.1.2.3" in [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)]
    assert "server1" in san.value.get_values_for_type(x509.DNSName)


def test_the_overseer_kit_runs_fedra_overseer_and_everyone_knows_its_url(
    provisioned: ProvisionResult,
) -> None:
    from fedra.overseer import OverseerKit, OverseerSettings, client_for_kit

    prod = provisioned.prod
    root = prod / "overseer.acme.org"
    sub_start = (root / "startup" / "sub_start.sh").read_text()
    assert '-m fedra.cli overseer start --kit "$KIT"' in sub_start
    assert mode(root / "startup" / "start.sh") & 0o111
    kit = OverseerKit.load(root)
    assert (kit.name, kit.host, kit.port, kit.api_root) == (
        "overseer.acme.org",
        "overseer.acme.org",
        8443,
        "/api/v1",
    )
    assert kit.servers == frozenset({"server1"})
    assert kit.settings == OverseerSettings()
    assert kit.tls.cert == root / "startup" / "overseer.crt"
    defaults = json.loads((root / "local" / "overseer.json.default").read_text())
    assert {k: v for k, v in defaults.items() if k != "comment"} == OverseerSettings().to_json()
    url = "https://overseer.acme.org:8443/api/v1"
    for name, file in [
        ("server1", "fed_server.json"),
        ("site-1", "fed_client.json"),
        ("admin@acme.org", "fed_admin.json"),
    ]:
        config = json.loads((prod / name / "startup" / file).read_text())
        assert config["overseer"]["url"] == url, name
        assert client_for_kit(prod / name).url == url
