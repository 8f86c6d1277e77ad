"""The one declaration of admin commands: argument checks, one line per refusal."""

from __future__ import annotations

from typing import Any

import pytest

from fedra.core.admin_spec import (
    ADMIN_COMMAND,
    ADMIN_COMMANDS,
    RIGHTS,
    BadArguments,
    server_command,
    validate_args,
)


def test_every_declaration_has_a_right_an_object_and_unique_names() -> None:
    assert len(ADMIN_COMMAND) == len(ADMIN_COMMANDS)
    for command in ADMIN_COMMANDS:
        assert command.right in RIGHTS, command.name
        assert command.object_right in (None, *RIGHTS), command.name
        assert command.acts_on in ("job", "sites", "participant", "file", "folder", "nothing")
        assert len({a.name for a in command.args}) == len(command.args), command.name
        assert set(command.arg_names) <= {a.name for a in command.args}


def test_defaults_are_filled_in_and_valid_args_pass() -> None:
    assert validate_args(ADMIN_COMMAND["tail"], None) == {
        "participant": "server",
        "lines": 50,
        "file": "log.txt",
    }
    assert validate_args(ADMIN_COMMAND["list_jobs"], {"detailed": True, "prefix": None}) == {
        "detailed": True,
        "prefix": None,
    }
    args = {"target": "client", "names": ["site-a"]}
    assert validate_args(ADMIN_COMMAND["shutdown"], args) == args


@pytest.mark.parametrize(
    ("cmd", "args", "message"),
    [
        ("remove_client", {"names": ["site-b"]}, "unknown argument 'names'"),  # M8
        ("remove_client", {}, "missing argument 'name'"),
        ("get_job", {"job_id": 7}, "expected a non-empty string"),
        ("get_job", {"job_id": "../x"}, "not a job id"),
        ("tail", {"lines": "x"}, "expected an integer"),
        ("tail", {"lines": True}, "expected an integer"),
        ("tail", {"lines": 10**9}, "expected 1..10000"),
        ("cat", {"participant": "site-b", "file": "x\x00y"}, "control characters"),
        ("cat", {"participant": "site-b", "file": "x" * 1000}, "longer than"),
        ("list_jobs", {"detailed": "yes"}, "expected true or false"),
        ("check_status", {"target": "everything"}, "expected one of server, client"),
        ("shutdown", {"target": "client", "names": "site-a"}, "expected a list"),
        ("shutdown", {"target": "client", "names": ["a", 1]}, "non-empty string"),
        ("get_job", ["job"], "args must be an object"),
    ],
)
def test_bad_args_are_one_line(cmd: str, args: Any, message: str) -> None:
    with pytest.raises(BadArguments, match=message) as err:
        validate_args(ADMIN_COMMAND[cmd], args)
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)


@pytest.mark.parametrize("name", ["list_sp", "wait", "shutdown_system", "eval", None, 3, "x\n"])
def test_the_server_serves_only_its_declared_commands(name: object) -> None:
    with pytest.raises(BadArguments, match="unknown command"):
        server_command(name)
