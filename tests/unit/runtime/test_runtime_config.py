"""Reading a participant's own files: ``startup/fed_server.json`` and ``fed_client.json``
(typed, errors naming file and key) and the site's mandatory privacy policy
``local/privacy.json`` (filters from the built-in registry only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.core.kitfile import DEFAULT_WINDOW
from fedra.filters import ClipNorm, ExcludeVars, GaussianPrivacy
from fedra.runtime.config import CLIENT_FILE, SERVER_FILE, ServerKit, SiteKit
from fedra.runtime.privacy import load_site_filters


def write(root: Path, name: str, data: object) -> Path:
    path = root / "startup" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# -- fed_server.json ------------------------------------------------------------------------
def test_a_minimal_server_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    write(tmp_path, SERVER_FILE, {"name": "server1"})
    kit = ServerKit.load(tmp_path)
    assert (kit.root, kit.name, kit.org, kit.host) == (tmp_path, "server1", "", "0.0.0.0")
    assert (kit.fed_port, kit.admin_port, kit.max_jobs) == (8002, 8003, 4)
    assert (kit.heartbeat_timeout, kit.job_aging_s) == (60.0, 300.0)
    assert kit.sites is None and kit.overseer is None and kit.job_store is None
    assert kit.receive_window == DEFAULT_WINDOW  # a server parent's FL port: 16 MiB
    assert kit.roster.admins is None and kit.roster.revoked == frozenset()
    assert kit.startup == tmp_path / "startup"


def test_a_server_listening_everywhere_is_reached_by_its_name(tmp_path: Path) -> None:
    for host, public in (("0.0.0.0", "server1"), ("::", "server1"), ("", "server1")):
        write(tmp_path, SERVER_FILE, {"name": "server1", "host": host})
        assert ServerKit.load(tmp_path).public_host == public
    write(tmp_path, SERVER_FILE, {"name": "server1", "host": "10.0.0.5"})
    assert ServerKit.load(tmp_path).public_host == "10.0.0.5"


def test_the_server_reads_its_sites_as_a_tuple_and_its_store_under_the_kit(
    tmp_path: Path,
) -> None:
    data = {"name": "s", "sites": ["site-a", "site-b"], "job_store": {"backend": "sqlite"}}
    write(tmp_path, SERVER_FILE, data)
    kit = ServerKit.load(tmp_path)
    assert kit.sites == ("site-a", "site-b")
    assert kit.job_store is not None and kit.job_store.path == tmp_path / "store"


def test_an_empty_site_list_admits_no_site(tmp_path: Path) -> None:
    write(tmp_path, SERVER_FILE, {"name": "s", "sites": []})
    assert ServerKit.load(tmp_path).sites == ()  # not None: "any site" is only when absent


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"name": "s", "max_jobs": 0}, "max_jobs: expected an integer >= 1, got 0"),
        ({"name": "s", "fed_learn_port": 70000}, "fed_learn_port: expected a port number"),
        ({"name": "s", "admin_port": "8003"}, "admin_port: expected"),
        ({"name": "s", "heartbeat_timeout": 0}, "heartbeat_timeout: expected a number of "),
        ({"name": "s", "job_aging_s": -1}, "job_aging_s: expected a number of seconds > 0"),
        ({"name": "s", "receive_window": 1024}, "receive_window: expected an integer 65536-"),
        ({"name": "s", "sites": "site-a"}, "sites: expected"),
        ({"name": "s", "max_job": 5}, "max_job: unknown key"),
        ({"name": "line\nbreak"}, "name: expected a non-empty string"),
        ({"name": "s", "revoked": ["sha256:12"]}, "revoked: expected a list of participant"),
        ({"name": "s", "job_store": {"backend": "sqlite", "dsn": "x"}}, "job_store: unknown keys"),
    ],
)
def test_a_bad_server_file_names_the_file_and_the_key(
    tmp_path: Path, data: dict[str, object], key: str
) -> None:
    path = write(tmp_path, SERVER_FILE, data)
    with pytest.raises(ConfigError) as bad:
        ServerKit.load(tmp_path)
    assert str(bad.value).startswith(f"{path}: "), bad.value
    assert key in str(bad.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"name": "s",', "line 1: invalid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_an_unreadable_server_file_is_an_error_naming_it(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = tmp_path / "startup" / SERVER_FILE
    path.parent.mkdir()
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=message) as bad:
        ServerKit.load(tmp_path)
    assert str(path) in str(bad.value)


def test_a_folder_that_is_not_a_kit_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found: is this a startup kit folder"):
        ServerKit.load(tmp_path)
    with pytest.raises(ConfigError, match=f"{CLIENT_FILE} not found"):
        SiteKit.load(tmp_path)


# -- fed_client.json -------------------------------------------------------------------------
def test_a_minimal_site_file_gets_the_documented_defaults(tmp_path: Path) -> None:
    write(tmp_path, CLIENT_FILE, {"name": "site-a", "server_host": "fl.example.org"})
    kit = SiteKit.load(tmp_path)
    assert (kit.name, kit.org, kit.server_name, kit.fed_port) == ("site-a", "", "server", 8002)
    assert kit.heartbeat_interval == 5.0 and kit.overseer is None
    assert kit.target == "fl.example.org:8002"
    assert kit.startup == tmp_path / "startup"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"name": "site-a"}, "server_host: missing"),
        ({"name": "site-a", "server_host": ""}, "server_host: expected a non-empty string"),
        ({"name": "site-a", "server_host": "h", "heartbeat_interval": 0}, "heartbeat_interval"),
        ({"name": "site-a", "server_host": "h", "fed_learn_port": 0}, "fed_learn_port"),
        ({"name": "site-a", "server_host": "h", "max_jobs": 2}, "max_jobs: unknown key"),
        ({"name": "site-a", "server_host": "h", "admins": {}}, "admins: expected"),
        (
            {"name": "site-a", "server_host": "h", "overseer": {"name": "o"}},
            "overseer.host: missing",
        ),
    ],
)
def test_a_bad_site_file_names_the_file_and_the_key(
    tmp_path: Path, data: dict[str, object], key: str
) -> None:
    path = write(tmp_path, CLIENT_FILE, data)
    with pytest.raises(ConfigError) as bad:
        SiteKit.load(tmp_path)
    assert str(bad.value).startswith(f"{path}: "), bad.value
    assert key in str(bad.value)


# -- local/privacy.json ----------------------------------------------------------------------
def privacy(root: Path, data: object) -> Path:
    path = root / "local" / "privacy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_without_a_policy_a_site_adds_no_filter(tmp_path: Path) -> None:
    assert load_site_filters(tmp_path) == ([], [])


def test_the_simple_form_builds_the_filters_in_order(tmp_path: Path) -> None:
    privacy(
        tmp_path,
        {
            "task_data_filters": [{"class": "ExcludeVars", "args": {"names": ["secret"]}}],
            "task_result_filters": [
                {"class": "ClipNorm", "args": {"max_norm": 2.0}},
                {"class": "GaussianPrivacy", "args": {"clip_norm": 2.0, "noise_multiplier": 0.1}},
            ],
        },
    )
    data, result = load_site_filters(tmp_path)
    assert [type(f) for f in data] == [ExcludeVars]
    assert [type(f) for f in result] == [ClipNorm, GaussianPrivacy]


def test_the_default_scope_is_the_one_applied(tmp_path: Path) -> None:
    clip = [{"class": "ClipNorm", "args": {"max_norm": 1.0}}]
    privacy(
        tmp_path,
        {
            "default_scope": "strict",
            "scopes": [
                {"name": "public", "task_result_filters": []},
                "not a scope",
                {"name": "strict", "task_result_filters": clip},
            ],
        },
    )
    assert [type(f) for f in load_site_filters(tmp_path)[1]] == [ClipNorm]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{oops", r"privacy\.json: line 1: invalid JSON"),
        ("[]", r"privacy\.json: expected a JSON object"),
        ({"default_scope": "x", "scopes": []}, "default_scope 'x' is not one of the scopes"),
        ({"scopes": [{"name": "public"}]}, "default_scope None is not one of the scopes"),
        ({"task_data_filters": {}}, r"task_data_filters: expected a list of filters"),
        ({"task_result_filters": [{"class": "Pickle"}]}, r"task_result_filters\[0\]: expected"),
        ({"task_result_filters": ["ClipNorm"]}, r"task_result_filters\[0\]: expected"),
        (
            {"task_result_filters": [{"class": "ClipNorm", "args": [1]}]},
            r"task_result_filters\[0\]\.args: expected an object",
        ),
        (
            {"task_result_filters": [{"class": "ClipNorm", "args": {"max_norm": -1}}]},
            r"task_result_filters\[0\]: max_norm must be finite and > 0",
        ),
        (
            {"task_result_filters": [{"class": "ClipNorm", "args": {"norm": 1}}]},
            r"task_result_filters\[0\]: .*unexpected keyword argument 'norm'",
        ),
    ],
)
def test_a_bad_policy_is_an_error_naming_the_file_and_the_filter(
    tmp_path: Path, data: object, message: str
) -> None:
    path = privacy(tmp_path, data)
    with pytest.raises(ConfigError, match=message) as bad:
        load_site_filters(tmp_path)
    assert str(bad.value).startswith(f"{path}: ")


@pytest.mark.parametrize("scopes", [5, None, {"name": "public"}])
def test_scopes_that_are_not_a_list_are_an_error_naming_the_file(
    tmp_path: Path, scopes: object
) -> None:
    path = privacy(tmp_path, {"default_scope": "public", "scopes": scopes})
    with pytest.raises(ConfigError, match="scopes: expected a list") as bad:
        load_site_filters(tmp_path)
    assert str(bad.value).startswith(f"{path}: ")


def test_a_class_is_looked_up_only_among_the_built_in_filters(tmp_path: Path) -> None:
    privacy(tmp_path, {"task_result_filters": [{"class": "os.system", "args": {}}]})
    with pytest.raises(ConfigError) as bad:
        load_site_filters(tmp_path)
    assert "one of ['ClipNorm'" in str(bad.value)
