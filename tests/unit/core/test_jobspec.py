"""The job format: valid configs parse, every malformed one names the file and the key."""

from __future__ import annotations

from typing import Any

import pytest

from fedra.core import (
    CLIENT_CONFIG,
    META_FILE,
    SERVER_CONFIG,
    JobValidationError,
    parse_client_config,
    parse_meta,
    parse_server_config,
)

#: Marks a key to leave out of the generated meta.json.
_DROP = object()


def _meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "hello-fedavg",
        "deploy_map": {"app_server": ["server"], "app_site": ["site-1", "site-2"]},
        "min_clients": 2,
    }
    meta.update(overrides)
    return {k: v for k, v in meta.items() if v is not _DROP}


# -- valid configs ---------------------------------------------------------------------


def test_valid_meta_parses() -> None:
    meta = parse_meta(
        _meta(
            format_version=1,
            mandatory_clients=["site-1"],
            resource_spec={"site-1": {"gpu": 1}},
        )
    )
    assert meta.name == "hello-fedavg"
    assert meta.deploy_map == {"app_server": ("server",), "app_site": ("site-1", "site-2")}
    assert meta.min_clients == 2
    assert meta.mandatory_clients == ("site-1",)
    assert meta.resource_spec == {"site-1": {"gpu": 1}}
    assert meta.server_app() == "app_server"
    assert meta.app_for_site("site-2") == "app_site"
    assert meta.app_for_site("site-9") is None


def test_meta_defaults_and_all_sites() -> None:
    meta = parse_meta({"name": "j", "deploy_map": {"app": ["@ALL"]}})
    assert meta.min_clients == 1
    assert meta.mandatory_clients == ()
    assert meta.server_app() == "app"
    assert meta.app_for_site("anything") == "app"


def test_valid_server_config_parses() -> None:
    config = parse_server_config(
        {
            "format_version": 1,
            "workflows": [
                {"class": "FedAvg", "args": {"num_rounds": 3}},
                {"custom": "my_flows.Special"},
            ],
            "persistor": {"class": "ModelPersistor", "args": {"key_metric": "loss"}},
        }
    )
    first, second = config.workflows
    assert (first.name, first.custom, dict(first.args)) == ("FedAvg", False, {"num_rounds": 3})
    assert first.origin == (SERVER_CONFIG, "workflows[0]")
    assert (second.name, second.custom, dict(second.args)) == ("my_flows.Special", True, {})
    assert config.persistor is not None
    assert config.persistor.name == "ModelPersistor"
    assert dict(config.persistor.args) == {"key_metric": "loss"}


def test_valid_client_config_parses() -> None:
    config = parse_client_config(
        {
            "executors": [
                {"custom": "trainer.Trainer", "tasks": ["train", "validate"], "args": {"lr": 0.1}},
                {"class": "ScriptExecutor"},
            ]
        }
    )
    first, second = config.executors
    assert first.custom and first.name == "trainer.Trainer"
    assert first.tasks == ("train", "validate")
    assert dict(first.args) == {"lr": 0.1}
    assert second.tasks == ("*",)
    assert second.origin == (CLIENT_CONFIG, "executors[1]")


# -- malformed configs -----------------------------------------------------------------


def _assert_names(err: JobValidationError, file: str, key: str) -> None:
    assert err.file == file
    assert err.key == key
    assert file in str(err)
    assert key in str(err)


META_CASES = {
    "missing name": (_meta(name=_DROP), "name"),
    "name not a string": (_meta(name=3), "name"),
    "name with a slash": (_meta(name="a/b"), "name"),
    "deploy_map missing": (_meta(deploy_map=_DROP), "deploy_map"),
    "deploy_map a list": (_meta(deploy_map=["server"]), "deploy_map"),
    "deploy_map empty": (_meta(deploy_map={}), "deploy_map"),
    "deploy_map targets a string": (_meta(deploy_map={"app": "server"}), "deploy_map.app"),
    "deploy_map empty target": (_meta(deploy_map={"app": ["server", ""]}), "deploy_map.app[1]"),
    "deploy_map app escapes": (_meta(deploy_map={"../app": ["server"]}), "deploy_map.../app"),
    "no server app": (_meta(deploy_map={"app": ["site-1"]}), "deploy_map"),
    "two server apps": (
        _meta(deploy_map={"a": ["server"], "b": ["server", "site-1"]}),
        "deploy_map",
    ),
    "min_clients 0": (_meta(min_clients=0), "min_clients"),
    "min_clients bool": (_meta(min_clients=True), "min_clients"),
    "min_clients str": (_meta(min_clients="2"), "min_clients"),
    "min_clients float": (_meta(min_clients=2.0), "min_clients"),
    "unknown key": (_meta(rounds=3), "rounds"),
    "mandatory_clients not a list": (_meta(mandatory_clients="site-1"), "mandatory_clients"),
    "resource_spec entry not an object": (
        _meta(resource_spec={"site-1": 4}),
        "resource_spec.site-1",
    ),
    "format_version 2": (_meta(format_version=2), "format_version"),
    "format_version string": (_meta(format_version="1"), "format_version"),
    "format_version bool": (_meta(format_version=True), "format_version"),
    "format_version float": (_meta(format_version=1.0), "format_version"),
}


@pytest.mark.parametrize(("data", "key"), META_CASES.values(), ids=META_CASES.keys())
def test_malformed_meta(data: dict[str, Any], key: str) -> None:
    with pytest.raises(JobValidationError) as info:
        parse_meta(data)
    _assert_names(info.value, META_FILE, key)


def test_meta_top_level_not_object() -> None:
    with pytest.raises(JobValidationError) as info:
        parse_meta(["name"], file="jobs/x/meta.json")
    assert "jobs/x/meta.json" in str(info.value)


def test_error_names_the_given_file() -> None:
    with pytest.raises(JobValidationError) as info:
        parse_meta(_meta(min_clients=0), file="jobs/hello/meta.json")
    _assert_names(info.value, "jobs/hello/meta.json", "min_clients")


def test_an_unknown_key_is_named_with_its_file_and_the_known_keys() -> None:
    with pytest.raises(JobValidationError) as info:
        parse_meta(_meta(rounds=3), file="jobs/x/meta.json")
    message = str(info.value)
    assert message.startswith("jobs/x/meta.json: unknown key 'rounds' (expected one of: name,")
    assert "got" not in message
    with pytest.raises(JobValidationError) as nested:
        parse_server_config({"workflows": [{"class": "FedAvg", "rounds": 3}]}, "app/s.json")
    assert str(nested.value) == (
        "app/s.json: unknown key 'workflows[0].rounds' (expected one of: class, custom, args)"
    )
    assert nested.value.key == "workflows[0].rounds"


SERVER_CASES = {
    "workflows missing": ({}, "workflows"),
    "workflows empty": ({"workflows": []}, "workflows"),
    "workflows an object": ({"workflows": {"class": "FedAvg"}}, "workflows"),
    "class and custom": (
        {"workflows": [{"class": "FedAvg", "custom": "m.FedAvg"}]},
        "workflows[0]",
    ),
    "neither class nor custom": ({"workflows": [{"args": {}}]}, "workflows[0]"),
    "custom without module": ({"workflows": [{"custom": "FedAvg"}]}, "workflows[0].custom"),
    "custom with a path": ({"workflows": [{"custom": "../m.Cls"}]}, "workflows[0].custom"),
    "custom starting with a digit": (
        {"workflows": [{"class": "FedAvg"}, {"custom": "1m.Cls"}]},
        "workflows[1].custom",
    ),
    "class dotted": ({"workflows": [{"class": "a.B"}]}, "workflows[0].class"),
    "args a list": ({"workflows": [{"class": "FedAvg", "args": [1]}]}, "workflows[0].args"),
    "tasks on a workflow": (
        {"workflows": [{"class": "FedAvg", "tasks": ["train"]}]},
        "workflows[0].tasks",
    ),
    "unknown key": ({"workflows": [{"class": "FedAvg"}], "rounds": 2}, "rounds"),
    "persistor not an object": (
        {"workflows": [{"class": "FedAvg"}], "persistor": "npz"},
        "persistor",
    ),
    "format_version 0": (
        {"workflows": [{"class": "FedAvg"}], "format_version": 0},
        "format_version",
    ),
}


@pytest.mark.parametrize(("data", "key"), SERVER_CASES.values(), ids=SERVER_CASES.keys())
def test_malformed_server_config(data: dict[str, Any], key: str) -> None:
    with pytest.raises(JobValidationError) as info:
        parse_server_config(data)
    _assert_names(info.value, SERVER_CONFIG, key)


CLIENT_CASES = {
    "executors missing": ({}, "executors"),
    "executors not a list": ({"executors": {"class": "ScriptExecutor"}}, "executors"),
    "executors empty": ({"executors": []}, "executors"),
    "executor not an object": ({"executors": ["ScriptExecutor"]}, "executors[0]"),
    "tasks not a list": (
        {"executors": [{"class": "ScriptExecutor", "tasks": "train"}]},
        "executors[0].tasks",
    ),
    "class and custom": (
        {"executors": [{"class": "ScriptExecutor", "custom": "t.Trainer"}]},
        "executors[0]",
    ),
    "bad custom name": ({"executors": [{"custom": "t.Trainer()"}]}, "executors[0].custom"),
    "unknown executor key": (
        {"executors": [{"class": "ScriptExecutor", "script": "x.py"}]},
        "executors[0].script",
    ),
    "format_version 2": (
        {"executors": [{"class": "ScriptExecutor"}], "format_version": 2},
        "format_version",
    ),
}


@pytest.mark.parametrize(("data", "key"), CLIENT_CASES.values(), ids=CLIENT_CASES.keys())
def test_malformed_client_config(data: dict[str, Any], key: str) -> None:
    with pytest.raises(JobValidationError) as info:
        parse_client_config(data)
    _assert_names(info.value, CLIENT_CONFIG, key)
