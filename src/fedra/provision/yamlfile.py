"""Read a YAML file safely into plain values that remember their line numbers.

Only the safe subset is read: the text is composed with :class:`yaml.SafeLoader` (no Python
tags, nothing constructed but strings, numbers, booleans, nulls, lists and mappings).
Aliases are refused (a project file needs none, and they are how "billion laughs" files
explode), and so are duplicate keys, which YAML would otherwise resolve silently to the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor

from fedra.provision.errors import ProjectError

#: A project file larger than this is refused before it is parsed.
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Located:
    """A YAML value and the 1-based line it starts on.

    ``value`` is a ``dict[str, Located]`` for a mapping, a ``list[Located]`` for a sequence,
    and a plain ``str``, ``int``, ``float``, ``bool`` or ``None`` for a scalar.
    """

    value: object
    line: int


def parse_yaml(text: str, file: str) -> Located | None:
    """The document in ``text`` (``None`` when it is empty); errors name ``file`` and the line."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise ProjectError(file, None, "", f"expected at most {MAX_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "syntax error"
        raise ProjectError(file, line, "", f"invalid YAML: {problem}") from err
    except yaml.YAMLError as err:
        raise ProjectError(file, None, "", f"invalid YAML: {err}") from err
    if node is None:
        return None
    return _Walker(file).walk(node)


class _NoAliasLoader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` that refuses aliases where they stand."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not supported", event.start_mark
            )
        return super().compose_node(parent, index)


class _Walker:
    """Turns a composed node tree into :class:`Located` values, once per node."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.seen: set[int] = set()
        self.constructor = SafeConstructor()

    def walk(self, node: yaml.Node) -> Located:
        line = node.start_mark.line + 1
        if id(node) in self.seen:
            raise ProjectError(self.file, line, "", "anchors and aliases are not supported")
        self.seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return Located(self._mapping(node), line)
        if isinstance(node, yaml.SequenceNode):
            return Located([self.walk(item) for item in node.value], line)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            raise ProjectError(self.file, line, "", f"invalid YAML value: {err}") from err
        if not isinstance(value, str | int | float | bool) and value is not None:
            shown = type(value).__name__
            raise ProjectError(self.file, line, "", f"expected a plain value, got a {shown}")
        return Located(value, line)

    def _mapping(self, node: yaml.MappingNode) -> dict[str, Located]:
        result: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = self.walk(key_node)
            if not isinstance(key.value, str):
                raise ProjectError(
                    self.file, key.line, "", f"expected a text key, got {key.value!r}"
                )
            if key.value in result:
                first = result[key.value].line
                raise ProjectError(
                    self.file, key.line, key.value, f"duplicate key (first on line {first})"
                )
            value = self.walk(value_node)
            # A key's line is where the key stands; keep it on the value for error messages
            # about a missing or empty value.
            result[key.value] = value if value.value is not None else Located(None, key.line)
        return result


def plain(node: Located) -> object:
    """The value of ``node`` without line numbers: what :func:`yaml.safe_load` would give."""
    if isinstance(node.value, dict):
        return {key: plain(value) for key, value in node.value.items()}
    if isinstance(node.value, list):
        return [plain(item) for item in node.value]
    return node.value


def line_at(node: Located, path: Sequence[str | int]) -> int:
    """The line of the value at ``path`` (keys and indexes) below ``node``; the line of the
    nearest mapping or list on the way when the path goes further than the file does."""
    for key in path:
        values = node.value
        found = values.get(key) if isinstance(values, dict) else None
        if isinstance(values, list) and isinstance(key, int) and 0 <= key < len(values):
            found = values[key]
        if not isinstance(found, Located):
            break
        node = found
    return node.line
