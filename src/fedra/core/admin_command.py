"""What an admin command declaration is: :class:`AdminCommand` and the words it uses (rights,
scopes, objects, who serves it).

The declarations themselves are in :mod:`fedra.core.admin_spec` (and
:mod:`fedra.core.admin_spec_workspace`); this module only says what one holds.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from fedra.core import admin_results as r
from fedra.core.admin_args import ArgSpec

Right = Literal["submit_job", "manage_job", "download_job", "view", "operate"]
Scope = Literal["none", "own", "own_org", "any"]
ActsOn = Literal["job", "sites", "participant", "file", "folder", "nothing"]
ServedBy = Literal["server", "overseer", "console"]
Group = Literal["jobs", "federation", "ha"]

#: Every right, in the order the docs list them.
RIGHTS: tuple[Right, ...] = ("submit_job", "manage_job", "download_job", "view", "operate")
#: Every scope, from the narrowest.
SCOPES: tuple[Scope, ...] = ("none", "own", "own_org", "any")
#: The ``fedra`` command group of each group's CLI twins (``fedra job submit`` ...).
CLI_GROUPS: dict[Group, str] = {"jobs": "job", "federation": "system", "ha": "overseer"}


@dataclass(frozen=True)
class AdminCommand:
    """One admin command: who serves it, the right it needs, what it acts on, its arguments,
    its help and its result type.

    ``right`` is checked with the admin's scope on the object the command acts on (for
    ``nothing``: a scope other than ``none``; ``operate`` with nothing needs ``any``).
    ``object_right``, when set, is the right checked on the object instead, while ``right``
    is then checked as a right with no object: ``clone_job`` needs ``submit_job`` and ``view``
    on the original job. ``cli`` names its CLI twin in its group's ``fedra`` command group
    (:data:`CLI_GROUPS`: ``fedra job``, ``fedra system``, ``fedra overseer``), if it has one.
    """

    name: str
    right: Right
    acts_on: ActsOn
    args: tuple[ArgSpec, ...] = ()
    served_by: ServedBy = "server"
    object_right: Right | None = None
    help: str = ""
    #: What the reply's ``data`` holds (``check_status``: one type per target).
    results: tuple[type[msgspec.Struct], ...] = (r.Done,)
    cli: str | None = None
    group: Group = "jobs"
    #: What else is checked, for the docs (beyond the right on the object).
    note: str = ""

    @property
    def arg_names(self) -> tuple[str, ...]:
        """The names of the arguments the request carries."""
        return tuple(a.name for a in self.args if a.sent)

    @property
    def params(self) -> tuple[ArgSpec, ...]:
        """The arguments the console and the CLI take, in order."""
        return tuple(a for a in self.args if a.typed)

    @property
    def usage(self) -> str:
        """The console usage line."""
        return " ".join([self.name, *(p.usage() for p in self.params)])

    @property
    def summary(self) -> str:
        """The first line of the help text."""
        return self.help.split("\n", 1)[0]

    @property
    def needs(self) -> str:
        """The right the command needs, for help texts (``view``, ``submit_job`` ...)."""
        extra = f" + {self.object_right} on the job" if self.object_right else ""
        return f"{self.right} (acts on: {self.acts_on}){extra}"

    @property
    def cli_path(self) -> str | None:
        """The CLI twin as typed (``fedra job submit``), or None when it has none."""
        return f"fedra {CLI_GROUPS[self.group]} {self.cli}" if self.cli else None
