"""docs/schemas/*.schema.json: generated from the msgspec schemas, and never stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.cli import main
from fedra.cli.schema import FILES, json_schema, render

DOCS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@pytest.mark.parametrize("name", FILES)
def test_committed_schema_is_fresh(name: str) -> None:
    committed = DOCS / f"{name}.schema.json"
    assert committed.is_file(), f"run: fedra schema --write docs/schemas ({committed} missing)"
    assert committed.read_text(encoding="utf-8") == render(name), (
        f"{committed} is stale: run `fedra schema --write docs/schemas`"
    )


def test_no_stray_schema_files() -> None:
    assert sorted(p.name for p in DOCS.glob("*.json")) == sorted(f"{n}.schema.json" for n in FILES)


def test_schemas_say_what_is_expected() -> None:
    project = json_schema("project")
    server = project["$defs"]["Server"]  # type: ignore[index]
    assert server["additionalProperties"] is False
    assert server["properties"]["fed_learn_port"]["description"] == "an integer 1-65535"
    assert server["properties"]["type"] == {"enum": ["server"]}


def cli(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # typer exits after a command that succeeds
        return int(exc.code or 0)


def test_cli_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("schema", "meta") == 0
    assert json.loads(capsys.readouterr().out)["title"] == "a job's meta.json"
    assert cli("schema", "--write", str(tmp_path)) == 0
    assert (tmp_path / "fed_admin.schema.json").read_text() == render("fed_admin")
    assert cli("schema", "nope") == 2
    assert "no schema 'nope'" in capsys.readouterr().err
