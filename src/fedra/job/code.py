"""Whether a job brings code of its own (BYOC), decided from its content.

A participant whose policy does not let the submitter's role run custom code (``byoc``) runs
only built-in components with arguments that name no code. Anything else the job ships that
could run counts as the job's own code, whatever its name or extension:

- every file under an app's ``custom/`` folder (a ``train.txt`` run by ``python`` is code as
  much as a ``train.py``; so is a model definition that a persistor imports);
- every component that is a class from ``custom/`` (``"custom": "module.Class"``) or is not
  in the built-in registry;
- every argument of a component that names a script, a command or a module to run
  (:data:`CODE_ARGUMENTS`), even when the file it names is not shipped.

:func:`job_code` lists what it found; a site checks the app it runs, the server the server
app (:func:`folder_code`), and each refuses the job when the list is not empty and its policy
says ``byoc: none`` for the submitter's role.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from fedra.core import ComponentSpec, FedraError
from fedra.job.folder import App, JobDefinition, load_job
from fedra.job.registry import Kind, builtin

#: Component arguments whose value names code to run: a script, a command, a module.
CODE_ARGUMENTS = frozenset(
    {
        "script",
        "command",
        "cmd",
        "executable",
        "program",
        "launcher",
        "entry_point",
        "module",
        "torch_module",
    }
)


def job_code(job: JobDefinition, apps: Iterable[App] | None = None) -> list[str]:
    """What in the validated job ``job`` could run as code of its own, one line per finding
    (``where: what``), in a stable order; empty when the job uses built-ins only.

    ``apps``: the apps to look at (default: all of them); a participant passes the apps it
    runs (see :func:`folder_code`)."""
    found: list[str] = []
    chosen = job.apps.values() if apps is None else apps
    for app in sorted(chosen, key=lambda a: a.name):
        found += _custom_files(app)
        for spec, kind in _components(app):
            found += _component_code(spec, kind)
    return found


def describe(found: list[str], shown: int = 3) -> str:
    """A one-line summary of :func:`job_code`'s findings for a refusal message."""
    more = len(found) - shown
    return "; ".join(found[:shown]) + (f" (and {more} more)" if more > 0 else "")


def _custom_files(app: App) -> list[str]:
    """Every entry under the app's ``custom/`` (files, links, anything but folders)."""
    folder = app.path / "custom"
    if not folder.exists() and not folder.is_symlink():
        return []
    if folder.is_symlink() or not folder.is_dir():
        return [f"{app.name}/custom: not a folder (shipped as code)"]
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        # A link to a folder is listed in dirs but not walked: it counts as a file.
        entries = files + [d for d in dirs if (Path(parent) / d).is_symlink()]
        for name in sorted(entries):
            relative = (Path(parent) / name).relative_to(app.path).as_posix()
            found.append(f"{app.name}/{relative}: a file in custom/")
    return found


def _components(app: App) -> Iterator[tuple[ComponentSpec, Kind]]:
    if app.server is not None:
        yield from ((w, "workflow") for w in app.server.workflows)
        if app.server.persistor is not None:
            yield app.server.persistor, "persistor"
        yield from ((f, "filter") for f in app.server.result_filters)
    if app.client is not None:
        yield from ((e, "executor") for e in app.client.executors)
        yield from ((f, "filter") for f in app.client.task_data_filters)
        yield from ((f, "filter") for f in app.client.task_result_filters)


def _component_code(spec: ComponentSpec, kind: Kind) -> list[str]:
    file, key = spec.origin
    if spec.custom:
        return [f"{file}: {key}.custom '{spec.name}': a class of the job's own"]
    if builtin(kind, spec.name) is None:
        return [f"{file}: {key}.class '{spec.name}': not a built-in {kind}"]
    return [
        f"{file}: {key}.args.{name} {value!r}: names code to run"
        for name, value in sorted(spec.args.items())
        if name in CODE_ARGUMENTS and value not in (None, "")
    ]


def folder_code(job_dir: Path, site: str | None) -> list[str]:
    """:func:`job_code` of the apps that ``site`` (None: the server) runs from the job folder
    ``job_dir``. A job that does not validate counts as bringing code: it cannot be shown to
    use built-ins only."""
    try:
        job = load_job(job_dir)
        app = job.server_app if site is None else job.client_app(site)
    except FedraError as exc:
        return [f"the job does not validate ({exc})"]
    return job_code(job, [] if app is None else [app])
