"""The admin commands FLARE 2.1 users type by habit: a participant's workspace (``pwd``,
``ls``, ``head``, ``grep``), its runtime (``env``), the server (``info``), the sites'
resources (``report_resources``), a job's errors (``reset_errors``) and the session's
timeout (``set_timeout``).

Declared here, once, like every command of :mod:`fedra.core.admin_spec` (which lists them
with the others). What they read is confined as ``cat`` and ``tail`` are
(:mod:`fedra.runtime.confined`): the participant's ``log.txt`` and the folders of jobs the
admin may see, nothing else; sizes, line counts, listings and patterns are bounded here and
again where the work is done.

Pure: no I/O.
"""

from __future__ import annotations

from fedra.core import admin_results as r
from fedra.core.admin_args import ArgSpec
from fedra.core.admin_command import AdminCommand

#: Longest ``grep`` pattern.
MAX_PATTERN = 256
#: Most lines ``head`` shows (as ``tail``).
MAX_LINES = 10_000
#: Bounds of ``set_timeout`` (seconds).
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1, 86_400

_PARTICIPANT = "server or a site name."


def _participant(required: bool = False) -> ArgSpec:
    default = None if required else "server"
    return ArgSpec("participant", "str", _PARTICIPANT, required, default, max_len=128)


def _target() -> ArgSpec:
    return ArgSpec("target", "str", _PARTICIPANT, default="server", max_len=128)


def _file(help: str = "log.txt, or JOB_ID/PATH (a file of a job you may see).") -> ArgSpec:
    return ArgSpec("file", "str", help, required=True)


WORKSPACE: tuple[AdminCommand, ...] = (
    AdminCommand(
        "info",
        "view",
        "nothing",
        help="Show the project, this server, Fedra's version, who you are, your scope per "
        "right, and which server is hot.",
        results=(r.ServerInfo,),
        cli="info",
        group="federation",
    ),
    AdminCommand(
        "pwd",
        "view",
        "participant",
        (_target(),),
        help="Show a participant's workspace folder and what you may name in it.",
        results=(r.Workspace,),
        cli="pwd",
        group="federation",
    ),
    AdminCommand(
        "ls",
        "view",
        "folder",
        (
            _participant(),
            ArgSpec(
                "path",
                "str",
                "JOB_ID or JOB_ID/FOLDER (default: the workspace: log.txt and the jobs).",
                metavar="PATH",
            ),
            ArgSpec(
                "recursive",
                "bool",
                "List sub-folders too (at most 8 deep, 2000 entries).",
                default=False,
                flags=("-R", "--recursive"),
            ),
        ),
        help="List a participant's workspace, or a folder of a job you may see.",
        note="the workspace lists only the jobs your view scope reaches; links are shown, "
        "never followed",
        results=(r.Listing,),
        cli="ls",
        group="federation",
    ),
    AdminCommand(
        "head",
        "view",
        "file",
        (
            _participant(required=True),
            _file(),
            ArgSpec(
                "lines",
                "int",
                "How many lines.",
                default=10,
                min=1,
                max=MAX_LINES,
                flags=("-n", "--lines"),
            ),
        ),
        help="Show the first lines of a participant's log, or of a job's file (as for cat).",
        note="as `tail`",
        results=(r.FileText,),
        cli="head",
        group="federation",
    ),
    AdminCommand(
        "grep",
        "view",
        "file",
        (
            _participant(required=True),
            ArgSpec(
                "pattern",
                "str",
                "A regular expression (Python syntax), or plain text.",
                required=True,
                max_len=MAX_PATTERN,
            ),
            _file(),
            ArgSpec(
                "ignore_case",
                "bool",
                "Ignore case.",
                default=False,
                flags=("-i", "--ignore-case"),
            ),
        ),
        help="Show the lines of a participant's log (or of a job's file) that match PATTERN, "
        "with their numbers.",
        note="as `tail`; the pattern runs in a separate process with a time and memory limit",
        results=(r.FileText,),
        cli="grep",
        group="federation",
    ),
    AdminCommand(
        "env",
        "view",
        "participant",
        (_target(),),
        help="Show a participant's runtime: Fedra, Python, platform, CPUs, memory, packages, "
        "declared resources (never its environment variables).",
        results=(r.EnvInfo,),
        cli="env",
        group="federation",
    ),
    AdminCommand(
        "report_resources",
        "view",
        "nothing",
        help="Show each site's resources as the scheduler sees them: declared, free, jobs.",
        note="lists only the sites your view scope reaches",
        results=(r.ResourceReport,),
        cli="resources",
        group="federation",
    ),
    AdminCommand(
        "set_timeout",
        "view",
        "nothing",
        (
            ArgSpec(
                "seconds",
                "float",
                f"Seconds to wait for each reply ({MIN_TIMEOUT_S}..{MAX_TIMEOUT_S}).",
                required=True,
                min=MIN_TIMEOUT_S,
                max=MAX_TIMEOUT_S,
            ),
        ),
        served_by="console",
        help="Set how long this console session waits for each command's reply.",
        note="this session only",
        results=(r.SessionTimeout,),
        group="federation",
    ),
)

#: ``reset_errors`` (a job command: it sits with the other job commands).
RESET_ERRORS = AdminCommand(
    "reset_errors",
    "manage_job",
    "job",
    (ArgSpec("job_id", "job_id", "The job's id (see list_jobs).", required=True),),
    help="Clear a job's recorded errors: show_errors shows only errors recorded after it.",
    note="the job's history keeps every change (get_job)",
    results=(r.ErrorsReset,),
    cli="reset-errors",
)
