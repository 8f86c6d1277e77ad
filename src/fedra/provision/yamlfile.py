"""Read a YAML file safely into plain values that remember their line numbers.

Only the safe subset is read: the text is composed with :class:`yaml.SafeLoader` (no Python
tags, nothing constructed but strings, numbers, booleans, nulls, lists and mappings).
Aliases are refused (a project file needs none, and they are how "billion laughs" files
explode), and so are duplicate keys, which YAML would otherwise resolve silently to the last.
FLARE's project files use anchors, aliases and merge keys (``<<: *svr_comps``): read with
``aliases=True``, they are expanded, but never to more than :data:`MAX_VALUES` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

from fedra.provision.errors import ProjectError

#: A project file larger than this is refused before it is parsed.
MAX_BYTES = 1 << 20
#: The most values (scalars, lists, mappings) a file may expand to through its aliases.
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Located:
    """A YAML value and the 1-based line it starts on.

    ``value`` is a ``dict[str, Located]`` for a mapping, a ``list[Located]`` for a sequence,
    and a plain ``str``, ``int``, ``float``, ``bool`` or ``None`` for a scalar.
    """

    value: object
    line: int
    #: Whether the YAML node is used more than once (an anchor that aliases refer to).
    shared: bool = field(default=False, compare=False)


def parse_yaml(text: str, file: str, *, aliases: bool = False) -> Located | None:
    """The document in ``text`` (``None`` when it is empty); errors name ``file`` and the line.

    ``aliases``: expand anchors, aliases and merge keys (bounded) instead of refusing them.
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise ProjectError(file, None, "", f"expected at most {MAX_BYTES} bytes")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader if aliases else _NoAliasLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "syntax error"
        raise ProjectError(file, line, "", f"invalid YAML: {problem}") from err
    except yaml.YAMLError as err:
        raise ProjectError(file, None, "", f"invalid YAML: {err}") from err
    if node is None:
        return None
    return _Walker(file, aliases=aliases, root=node).walk(node)


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

    def __init__(self, file: str, *, aliases: bool = False, root: yaml.Node | None = None) -> None:
        self.file = file
        self.aliases = aliases
        self.uses: dict[int, int] = {}
        if aliases and root is not None:
            _count_uses(root, self.uses)
        self.seen: set[int] = set()
        self.open: set[int] = set()  # the mappings and lists being walked: no cycles
        self.values = 0
        self.constructor = SafeConstructor()

    def walk(self, node: yaml.Node) -> Located:
        line = node.start_mark.line + 1
        if id(node) in self.seen and not self.aliases:
            raise ProjectError(self.file, line, "", "anchors and aliases are not supported")
        if id(node) in self.open:
            raise ProjectError(self.file, line, "", "an alias refers to a value that contains it")
        self.seen.add(id(node))
        self.values += 1
        if self.values > MAX_VALUES:
            raise ProjectError(
                self.file, line, "", f"expected at most {MAX_VALUES} values (aliases expanded)"
            )
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return Located(self._mapping(node), line, self._is_shared(node))
                items = [self.walk(item) for item in node.value]
                return Located(items, line, self._is_shared(node))
            finally:
                self.open.discard(id(node))
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            raise ProjectError(self.file, line, "", f"invalid YAML value: {err}") from err
        if not isinstance(value, str | int | float | bool) and value is not None:
            shown = type(value).__name__
            raise ProjectError(self.file, line, "", f"expected a plain value, got a {shown}")
        return Located(value, line)

    def _is_shared(self, node: yaml.Node) -> bool:
        """Whether ``node`` is used more than once in the document."""
        return self.uses.get(id(node), 0) > 1

    def _merge(self, node: yaml.Node) -> list[tuple[str, Located]]:
        """The entries a merge key (``<<: *anchor`` or ``<<: [*a, *b]``) brings in."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        entries: list[tuple[str, Located]] = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                line = source.start_mark.line + 1
                raise ProjectError(self.file, line, "<<", "expected a mapping to merge")
            merged = self.walk(source).value
            assert isinstance(merged, dict)
            entries.extend(merged.items())
        return entries

    def _mapping(self, node: yaml.MappingNode) -> dict[str, Located]:
        result: dict[str, Located] = {}
        merged: list[tuple[str, Located]] = []
        for key_node, value_node in node.value:
            if self.aliases and key_node.tag == _MERGE_TAG:
                merged.extend(self._merge(value_node))
                continue
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
        for key_text, value in merged:  # keys written in the mapping win over merged ones
            result.setdefault(key_text, value)
        return result


def _count_uses(root: yaml.Node, uses: dict[int, int]) -> None:
    """How often each node is referred to (aliases refer to a node again), without expanding."""
    stack = [root]
    while stack:
        node = stack.pop()
        uses[id(node)] = uses.get(id(node), 0) + 1
        if uses[id(node)] > 1:
            continue
        if isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


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
