"""Read a project file in either format: Fedra's own (``api_version: 1``) or FLARE's (2, 3).

The two cannot be confused: a FLARE file says ``api_version: 2`` or ``3``, Fedra's says ``1``.
So ``fedra provision -p FILE`` needs no flag: :func:`read_project` looks at ``api_version``,
converts a FLARE file (:mod:`fedra.provision.flare`) and validates the result as any Fedra
project, with errors that name the lines of the file the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedra.provision.errors import ProjectError
from fedra.provision.flare import FlareImport, convert_flare, is_flare
from fedra.provision.project import Project
from fedra.provision.schema import parse_project, project_from_tree, read_text
from fedra.provision.yamlfile import parse_yaml


@dataclass(frozen=True)
class ProjectSource:
    """A validated project and where it came from."""

    project: Project
    #: The Fedra project file's text: as read, or as converted from FLARE's.
    text: str
    #: The conversion, when the file was a FLARE project file.
    flare: FlareImport | None = None


def read_project(path: str | Path) -> ProjectSource:
    """Read and validate the project file at ``path``, Fedra's or FLARE's."""
    path = Path(path)
    return parse_any(read_text(path), str(path), source=path)


def parse_any(text: str, file: str = "project.yml", *, source: Path | None = None) -> ProjectSource:
    """Validate ``text``, a project file in either format; errors name ``file``'s lines."""
    root = parse_yaml(text, file, aliases=True)
    if root is None:
        raise ProjectError(file, None, "", "the file is empty; expected a project description")
    if not is_flare(root):
        return ProjectSource(parse_project(text, file, source=source), text)
    flare = convert_flare(root, file)
    project = project_from_tree(flare.document, file)
    return ProjectSource(project, flare.fedra_yaml(), flare)


def load_project(path: str | Path) -> Project:
    """Read and validate the project file at ``path`` (a FLARE project file is converted)."""
    return read_project(path).project
