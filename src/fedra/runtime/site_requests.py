"""A site's answers to the requests the server relays from admins.

Any request, however malformed, gets a reply (a refusal says why) and at most one log line:
nothing here may end the site (security rule H1). ``cat``, ``tail``, ``head``, ``grep`` and
``ls`` are confined and bounded here too (defence in depth): only the site's ``log.txt`` and
``jobs/JOB_ID/...`` are readable or listable. ``env`` answers runtime facts, never the
process's environment variables.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from fedra.core import FedraError
from fedra.core.admin_results import Listing
from fedra.core.admin_spec_workspace import MAX_PATTERN
from fedra.protocol import RESTART_EXIT_CODE, Reply, Request
from fedra.runtime.site_resources import SiteResourceBook
from fedra.scheduler import ResourceError

log = logging.getLogger("fedra.site")


@dataclass
class SiteDesk:
    """What a site's requests read and change: its folder, resources and jobs."""

    name: str
    root: Path
    resources: SiteResourceBook
    #: The jobs whose process is up now.
    running: Callable[[], list[str]]
    #: Stop the site with this exit code.
    shutdown: Callable[[int], None]

    def answer(self, request: Request) -> Reply | None:
        """The reply to ``request`` (None when it wants none: no id)."""
        ok, data, error = True, None, None
        try:
            data = self._serve(request.cmd, request.args)
        except FedraError as exc:
            ok, error = False, str(exc)
        except Exception as exc:  # a malformed request is refused, never the end of the site
            ok, error = False, f"{request.cmd!r} failed: {type(exc).__name__}: {exc}"
        if error is not None:
            log.warning("refused request %r from the server: %s", request.cmd, error)
        return Reply(id=request.id, ok=ok, data=data, error=error) if request.id else None

    def _serve(self, cmd: str, args: Mapping[str, Any]) -> Any:
        if cmd == "sys_info":
            return {
                "name": self.name,
                "pid": os.getpid(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "jobs": self.running(),
            }
        if cmd in ("tail", "cat", "head", "grep"):
            return self._read(cmd, args)
        if cmd in ("ls", "pwd", "env"):
            return msgspec.to_builtins(self._workspace(cmd, args))
        if cmd == "reserve":
            return self._reserve(args)
        if cmd == "free":
            job_id = str(args.get("job_id", ""))
            if job_id not in self.running():  # a running job frees when its process ends
                self.resources.free(job_id)
            return self.resources.report()
        if cmd == "resources":
            return {**self.resources.report(), "holders": self.resources.holders()}
        if cmd in ("shutdown", "restart"):
            self.shutdown(RESTART_EXIT_CODE if cmd == "restart" else 0)
            return None
        raise FedraError(f"unknown request {cmd!r}")

    def _read(self, cmd: str, args: Mapping[str, Any]) -> dict[str, str]:
        """``cat`` or ``tail`` of log.txt or a file under jobs/JOB_ID, never startup/ or local/."""
        from fedra.runtime.confined import cat_text, parse_file, tail_text

        ref = parse_file(args.get("file", "log.txt"))
        parts = ref.parts if ref.job_id is None else ("jobs", ref.job_id, *ref.parts)
        if cmd == "cat":
            return {"text": cat_text(self.root, parts)}
        if cmd == "grep":
            from fedra.runtime.workspace_files import grep_text

            pattern, ignore_case = args.get("pattern"), args.get("ignore_case", False)
            if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN:
                raise FedraError(f"grep: pattern must be 1..{MAX_PATTERN} characters")
            return {"text": grep_text(self.root, parts, pattern, ignore_case is True)}
        lines = args.get("lines", 40)
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
            raise FedraError(f"tail: lines must be a positive integer, got {lines!r}")
        if cmd == "head":
            from fedra.runtime.workspace_files import head_text

            return {"text": head_text(self.root, parts, min(lines, 10_000))}
        return {"text": tail_text(self.root, parts, min(lines, 10_000))}

    def _workspace(self, cmd: str, args: Mapping[str, Any]) -> msgspec.Struct:
        """``pwd``, ``env``, or ``ls`` of the workspace (log.txt and jobs/) or a job's folder."""
        from fedra.runtime.confined import LOG_FILE, parse_folder
        from fedra.runtime.facts import env_info, workspace
        from fedra.runtime.workspace_files import MAX_ENTRIES, entry_of, list_folder

        if cmd == "pwd":
            return workspace(self.name, self.root)
        if cmd == "env":
            return env_info(self.name, self.resources.total.as_dict())
        folder = parse_folder(args.get("path") or None)
        if folder.job_id is not None:
            parts = ("jobs", folder.job_id, *folder.parts)
            walk = list_folder(self.root, parts, args.get("recursive") is True)
            return Listing(self.name, folder.name, walk.entries, walk.truncated)
        entries = []
        with contextlib.suppress(OSError):
            entries.append(entry_of(LOG_FILE, os.lstat(self.root / LOG_FILE)))
        with contextlib.suppress(FedraError):  # no jobs/ yet: no jobs
            jobs = list_folder(self.root, ("jobs",))
            entries += [e for e in jobs.entries if e.kind == "dir"]
        entries.sort(key=lambda e: e.name)
        return Listing(self.name, "", entries[:MAX_ENTRIES], len(entries) > MAX_ENTRIES)

    def _reserve(self, args: Mapping[str, Any]) -> dict[str, Any]:
        spec = args.get("spec") or {}
        if not isinstance(spec, dict):
            raise FedraError(f"reserve: spec must be an object, got {spec!r}")
        try:
            self.resources.reserve(str(args.get("job_id", "")), spec, float(args.get("ttl", 60.0)))
        except ResourceError as exc:
            raise FedraError(str(exc)) from exc
        return self.resources.report()


def malformed_request(headers: Mapping[str, object], why: str) -> Reply | None:
    """The refusal of a request whose headers do not fit a Request (one log line); None when
    it carries no usable id to answer under."""
    cmd = headers.get("cmd")
    log.warning("refused request %r from the server: malformed: %s", cmd, why)
    request_id = headers.get("id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 1024:
        return None
    return Reply(id=request_id, ok=False, error=f"malformed request: {why}")
