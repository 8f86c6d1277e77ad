"""The arguments of admin commands: their declaration (:class:`ArgSpec`) and their checks.

A request's ``args`` are checked against the declared arguments of its command before
anything else (wrong type, out of bounds, missing, undeclared: refused in one line); handlers
read the checked values through the typed getters (:func:`arg_text`, :func:`arg_int` ...).

Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from fedra.core.errors import ConfigError

ArgType = Literal["str", "int", "float", "bool", "job_id", "names", "path"]
ArgSide = Literal["sent", "local", "filled"]

#: What a job id looks like (the store makes uuid hex ids).
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Longest string argument, unless the argument says otherwise.
MAX_STR = 512
#: Most site names in one ``names`` argument.
MAX_NAMES = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")

#: A validated argument value, as the request's JSON carries it.
ArgValue: TypeAlias = str | int | float | bool | list[str] | None
#: A command's validated arguments by name (every declared ``sent`` argument is present).
Args: TypeAlias = dict[str, ArgValue]


class BadArguments(ConfigError):
    """A request's arguments do not match the command's declaration (one line)."""


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a command: its type and bounds, and how the console shows it.

    Positional in the console unless it has ``flags``; a ``names`` argument takes the rest of
    the line; a ``bool`` argument with flags is a switch.
    """

    name: str
    type: ArgType
    help: str = ""
    required: bool = False
    default: ArgValue = None
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    max_len: int = MAX_STR
    #: Whether the string may hold line breaks (a PEM certificate); other control
    #: characters are refused in every string.
    multiline: bool = False
    flags: tuple[str, ...] = ()
    metavar: str = ""
    side: ArgSide = "sent"

    @property
    def typed(self) -> bool:
        """Whether the console and the CLI take this argument (``filled`` ones are not)."""
        return self.side != "filled"

    @property
    def sent(self) -> bool:
        """Whether the argument travels in the request's ``args``."""
        return self.side != "local"

    @property
    def positional(self) -> bool:
        """Whether the console takes the argument by position rather than by flag."""
        return not self.flags

    @property
    def is_switch(self) -> bool:
        """Whether the argument is a flag with no value (``-d``)."""
        return self.type == "bool" and bool(self.flags)

    @property
    def shown(self) -> str:
        """How usage lines name the argument's value."""
        if self.metavar:
            return self.metavar
        if self.choices:
            return "|".join(self.choices)
        return self.name.upper()

    def usage(self) -> str:
        """This argument in a usage line: ``ID``, ``[LINES]``, ``[-d]``, ``[-n PREFIX]``."""
        if self.is_switch:
            return f"[{self.flags[0]}]"
        text = self.shown if self.positional else f"{self.flags[0]} {self.shown}"
        if self.type == "names":
            text += " ..."
        return text if self.required else f"[{text}]"


def check_args(cmd: str, specs: Sequence[ArgSpec], args: object) -> Args:
    """``args`` of command ``cmd`` checked against its declared ``specs``: every sent name,
    defaults filled in; BadArguments (one line) for a wrong type, a missing or an undeclared
    one."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadArguments(f"{cmd}: args must be an object, got {type(args).__name__}")
    names = {spec.name for spec in specs if spec.sent}
    extra = sorted(str(k) for k in args if k not in names)
    if extra:
        raise BadArguments(f"{cmd}: unknown argument {_show(extra[0])}")
    checked: Args = {}
    for spec in specs:
        if not spec.sent:
            continue
        value = args.get(spec.name)
        if value is None:
            if spec.required:
                raise BadArguments(f"{cmd}: missing argument '{spec.name}'")
            checked[spec.name] = spec.default
            continue
        checked[spec.name] = _check(cmd, spec, value)
    return checked


def _check(cmd: str, spec: ArgSpec, value: object) -> ArgValue:
    where = f"{cmd}: {spec.name}"
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise BadArguments(f"{where}: expected true or false, got {_show(value)}")
        return value
    if spec.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadArguments(f"{where}: expected an integer, got {_show(value)}")
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise BadArguments(f"{where}: expected {spec.min}..{spec.max}, got {value}")
        return value
    if spec.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise BadArguments(f"{where}: expected a number, got {_show(value)}")
        if (spec.min is not None and value < spec.min) or (
            spec.max is not None and value > spec.max
        ):
            raise BadArguments(f"{where}: expected {spec.min}..{spec.max}, got {value}")
        return value
    if spec.type == "names":
        if not isinstance(value, list) or len(value) > MAX_NAMES:
            raise BadArguments(f"{where}: expected a list of at most {MAX_NAMES} names")
        return [_string(where, item, spec.max_len) for item in value]
    text = _string(where, value, spec.max_len, spec.multiline)
    if spec.type == "job_id" and not JOB_ID.fullmatch(text):
        raise BadArguments(f"{where}: not a job id: {_show(text)}")
    if spec.choices and text not in spec.choices:
        raise BadArguments(f"{where}: expected one of {', '.join(spec.choices)}, got {_show(text)}")
    return text


def _string(where: str, value: object, max_len: int, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise BadArguments(f"{where}: expected a non-empty string, got {_show(value)}")
    if len(value) > max_len:
        raise BadArguments(f"{where}: longer than {max_len} characters")
    if (_CONTROL_BUT_LINES if multiline else _CONTROL).search(value):
        raise BadArguments(f"{where}: control characters are not allowed: {_show(value)}")
    return value


def _show(value: object, limit: int = 80) -> str:
    """A value for a one-line message: repr'd (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def arg_text(args: Args, name: str) -> str:
    """A validated string argument (required, or with a default)."""
    value = args[name]
    if not isinstance(value, str):
        raise TypeError(f"argument {name!r} is not a string: {value!r}")
    return value


def arg_optional_text(args: Args, name: str) -> str | None:
    """A validated string argument that may be absent."""
    value = args.get(name)
    return None if value is None else arg_text(args, name)


def arg_int(args: Args, name: str) -> int:
    """A validated integer argument."""
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"argument {name!r} is not an integer: {value!r}")
    return value


def arg_flag(args: Args, name: str) -> bool:
    """A validated true/false argument."""
    return args.get(name) is True


def arg_names(args: Args, name: str) -> list[str] | None:
    """A validated list of names, or None when not given."""
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise TypeError(f"argument {name!r} is not a list: {value!r}")
    return list(value)
