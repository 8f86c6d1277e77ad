"""Reading a console line's arguments against the command table.

:func:`parse_args` turns the words after a command's name into the keyword arguments of its
Session method, converting and checking them as the command's declared arguments
(:class:`fedra.core.admin_spec.ArgSpec`) say; every mistake is one :class:`UsageError` line
ending with the command's usage. The completer asks :func:`expected_param` which argument
comes next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fedra.admin.commands import Command
from fedra.admin.errors import UsageError
from fedra.admin.render import ConsoleArgs, ConsoleValue, OutputFormat
from fedra.core.admin_spec import ArgSpec

_CONVERT: dict[str, tuple[Callable[[str], ConsoleValue], str]] = {
    "int": (int, "an integer"),
    "float": (float, "a number"),
    "path": (lambda s: Path(s).expanduser(), "a path"),
}


def _bad(command: Command, problem: str) -> UsageError:
    return UsageError(f"{command.name}: {problem}; usage: {command.usage}")


def _convert(command: Command, param: ArgSpec, text: str) -> ConsoleValue:
    if param.type in _CONVERT:
        convert, expected = _CONVERT[param.type]
        try:
            return convert(text)
        except ValueError:
            raise _bad(command, f"{param.shown} must be {expected}, got {text!r}") from None
    if param.choices and text not in param.choices:
        raise _bad(command, f"{param.name} must be one of {', '.join(param.choices)}, got {text!r}")
    return text


def _option(command: Command, flag: str) -> ArgSpec | None:
    return next((p for p in command.params if flag in p.flags), None)


def parse_args(command: Command, argv: Sequence[str]) -> ConsoleArgs:
    """Turn the words after a command's name into keyword arguments for its Session method."""
    values: ConsoleArgs = {}
    names: list[str] = []
    positionals = [p for p in command.params if p.positional]
    words = list(argv)
    while words:
        word = words.pop(0)
        if word.startswith("-") and len(word) > 1 and not _is_number(word):
            flag, has_value, inline = word.partition("=")
            param = _option(command, flag)
            if param is None:
                raise _bad(command, f"unknown option '{flag}'")
            if param.is_switch:
                if has_value:
                    raise _bad(command, f"option '{flag}' takes no value")
                values[param.name] = True
                continue
            if not has_value:
                if not words:
                    raise _bad(command, f"option '{flag}' needs a value")
                inline = words.pop(0)
            values[param.name] = _convert(command, param, inline)
            continue
        if not positionals:
            raise _bad(command, f"unexpected argument '{word}'")
        param = positionals[0]
        if param.type == "names":
            names.append(word)
            values[param.name] = names
            continue
        positionals.pop(0)
        values[param.name] = _convert(command, param, word)
    for param in command.params:
        if param.name not in values:
            if param.required:
                raise _bad(command, f"missing {param.shown}")
            values[param.name] = param.default
    return values


def expected_param(command: Command, argv: Sequence[str]) -> ArgSpec | None:
    """Which argument the next word fills, given the complete words typed so far."""
    positionals = [p for p in command.params if p.positional]
    words = list(argv)
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            param = _option(command, word)
            if param is not None and not param.is_switch and "=" not in word:
                if not words:
                    return param
                words.pop(0)
        elif positionals and positionals[0].type != "names":
            positionals.pop(0)
    return positionals[0] if positionals else None


def split_format(argv: Sequence[str]) -> tuple[OutputFormat, list[str]]:
    """Take ``--format text|json`` (any command accepts it) out of the words of a line."""
    words = list(argv)
    fmt = OutputFormat.TEXT
    for i, word in enumerate(words):
        flag, has_value, value = word.partition("=")
        if flag != "--format":
            continue
        taken = [i]
        if not has_value and i + 1 < len(words):
            value = words[i + 1]
            taken.append(i + 1)
        try:
            fmt = OutputFormat(value)
        except ValueError:
            raise UsageError(f"--format must be text or json, got {value!r}") from None
        return fmt, [w for j, w in enumerate(words) if j not in taken]
    return fmt, words


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
