"""The command table: parsing, usage lines, and agreement with the Session and the CLI."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from fedra.admin import COMMANDS, OutputFormat, Session, UsageError, find, parse_args
from fedra.admin.syntax import expected_param, split_format


def test_every_entry_matches_its_session_method() -> None:
    for command in COMMANDS:
        assert getattr(Session, command.method.__name__) is command.method
        accepted = set(inspect.signature(command.method).parameters) - {"self"}
        assert {p.name for p in command.params} <= accepted, command.name
        assert command.help and command.summary


def test_every_cli_entry_is_a_fedra_job_command() -> None:
    from fedra.cli.job import app

    names = {info.name for info in app.registered_commands}
    jobs = {c.cli for c in COMMANDS if c.cli and c.declaration.group == "jobs"}
    assert jobs | {"validate"} == names


def test_every_declared_cli_twin_is_a_real_fedra_command() -> None:
    """Each command's ``cli_path`` (``fedra system tail``, ``fedra overseer active`` ...) is
    a command of the ``fedra`` CLI, and ``fedra system`` has nothing undeclared."""
    import typer.main

    from fedra.cli import app

    root = typer.main.get_command(app)
    groups = root.commands  # type: ignore[attr-defined]
    twins = [c.declaration.cli_path for c in COMMANDS if c.declaration.cli_path]
    assert {"fedra system status", "fedra system tail", "fedra system restart"} <= set(twins)
    assert {"fedra overseer status", "fedra overseer active", "fedra overseer promote"} <= set(
        twins
    )
    for path in twins:
        _, group, name = path.split()
        assert name in groups[group].commands, path
    system = {c.cli for c in COMMANDS if c.cli and c.declaration.group == "federation"}
    assert set(groups["system"].commands) == system


def test_usage_lines() -> None:
    assert find("list_jobs").usage == "list_jobs [-d] [-n PREFIX]"
    assert find("download_job").usage == "download_job JOB_ID [-o DIR]"
    assert find("shutdown").usage == "shutdown client|server|all [SITE ...]"
    assert find("tail").usage == "tail [PARTICIPANT] [-n LINES] [-f FILE]"


def test_parse_fills_defaults_and_converts() -> None:
    assert parse_args(find("list_jobs"), []) == {"detailed": False, "prefix": None}
    assert parse_args(find("list_jobs"), ["-d", "-n", "d4"]) == {"detailed": True, "prefix": "d4"}
    assert parse_args(find("list_jobs"), ["--prefix=d4"])["prefix"] == "d4"
    assert parse_args(find("tail"), ["site-1", "-n", "7"]) == {
        "participant": "site-1",
        "lines": 7,
        "file": "log.txt",
    }
    assert parse_args(find("download_job"), ["j1", "-o", "out"])["dest"] == Path("out")
    assert parse_args(find("wait"), ["j1", "--timeout", "2.5"])["timeout"] == 2.5
    assert parse_args(find("shutdown"), ["client", "site-1", "site-2"]) == {
        "target": "client",
        "names": ["site-1", "site-2"],
    }


@pytest.mark.parametrize(
    ("name", "argv", "problem"),
    [
        ("get_job", [], "get_job: missing JOB_ID; usage: get_job JOB_ID"),
        ("get_job", ["a", "b"], "get_job: unexpected argument 'b'; usage: get_job JOB_ID"),
        ("list_jobs", ["-x"], "list_jobs: unknown option '-x'"),
        ("list_jobs", ["-n"], "list_jobs: option '-n' needs a value"),
        ("list_jobs", ["-d=1"], "option '-d' takes no value"),
        ("tail", ["server", "-n", "many"], "tail: LINES must be an integer, got 'many'"),
        ("check_status", ["everyone"], "target must be one of server, client, got 'everyone'"),
    ],
)
def test_bad_arguments_are_one_usage_line(name: str, argv: list[str], problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_args(find(name), argv)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith(f"usage: {find(name).usage}")


def test_unknown_command() -> None:
    with pytest.raises(UsageError, match=r"^unknown command 'foo'; type \? for the list"):
        find("foo")


def test_format_is_taken_out_of_any_line() -> None:
    assert split_format(["-d", "--format", "json"]) == (OutputFormat.JSON, ["-d"])
    assert split_format(["--format=text", "x"]) == (OutputFormat.TEXT, ["x"])
    with pytest.raises(UsageError, match="--format must be text or json"):
        split_format(["--format", "xml"])


def test_expected_param_follows_positions_and_options() -> None:
    tail = find("tail")
    assert expected_param(tail, []) is tail.params[0]
    assert expected_param(tail, ["server", "-n"]) is tail.params[1]
    assert expected_param(tail, ["server"]) is None
    assert expected_param(find("shutdown"), ["client", "site-1"]) is find("shutdown").params[1]


def test_the_reference_documents_every_command() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "admin-commands.md").read_text()
    for command in COMMANDS:
        assert f"`{command.usage.replace('|', chr(92) + '|')}`" in doc, command.usage
        assert f"`{command.method.__name__}(" in doc, command.name
        if command.declaration.cli_path:
            assert command.declaration.cli_path in doc, command.cli
