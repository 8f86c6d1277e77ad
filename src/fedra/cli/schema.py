"""``fedra schema``: the JSON Schema of each config file, generated from its msgspec schema.

Editors validate and complete ``project.yml``, ``meta.json`` and the kits' ``fed_*.json``
with them (e.g. ``# yaml-language-server: $schema=docs/schemas/project.schema.json``);
``docs/schemas/`` holds the copies of this version, checked fresh by ``tests/test_schemas.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from fedra.core import ConfigError

#: The config files with a schema: name -> what it describes.
FILES = {
    "project": "project.yml",
    "meta": "a job's meta.json",
    "config_fed_server": "a server app's config/config_fed_server.json",
    "config_fed_client": "a site app's config/config_fed_client.json",
    "fed_server": "a server kit's startup/fed_server.json",
    "fed_client": "a site kit's startup/fed_client.json",
    "fed_admin": "an admin kit's startup/fed_admin.json",
}


def json_schema(name: str) -> dict[str, object]:
    """The JSON Schema (draft 2020-12) of the config file ``name`` (a key of :data:`FILES`)."""
    from fedra.core import kitfile
    from fedra.core.jobspec import ClientConfigFile, JobMeta, ServerConfigFile
    from fedra.provision.project import ProjectFile

    types: dict[str, object] = {
        "project": ProjectFile,
        "meta": JobMeta,
        "config_fed_server": ServerConfigFile,
        "config_fed_client": ClientConfigFile,
        "fed_server": kitfile.ServerFile,
        "fed_client": kitfile.SiteFile,
        "fed_admin": kitfile.AdminFile,
    }
    if name not in types:
        raise ConfigError(f"no schema {name!r}; expected one of {', '.join(FILES)}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": FILES[name],
        **msgspec.json.schema(types[name]),
    }


def render(name: str) -> str:
    """:func:`json_schema` as the text of ``docs/schemas/<name>.schema.json``."""
    return json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n"


def schema(
    name: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(FILES)}.")] = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write every schema to this folder instead.")
    ] = None,
) -> None:
    """Print the JSON Schema of a config file (project, meta, fed_server ...), for editors."""
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        for each in FILES:
            (write / f"{each}.schema.json").write_text(render(each), encoding="utf-8")
        typer.echo(f"wrote {len(FILES)} schemas to {write}")
        return
    if name is None:
        for each, what in FILES.items():
            typer.echo(f"{each:18} {what}")
        return
    typer.echo(render(name), nl=False)
