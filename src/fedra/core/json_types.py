"""JSON values as types, for values that really are arbitrary JSON (user metrics, run info,
message headers); values with known fields are dataclasses, TypedDicts or msgspec Structs.

:data:`JsonValue` and :data:`JsonObject` (declared in :mod:`fedra.core.jsonfile`) are what
``json.loads`` returns. Arguments that are only read and then written as JSON take
:data:`JsonCompatible`, whose read-only containers (``Sequence``, ``Mapping``) accept
``list[str]`` or ``dict[str, int]`` too (a ``list`` is invariant: ``list[str]`` is not a
``list[JsonValue]``). Annotations only: no run-time cost and no checking; the code that reads
JSON from outside validates it there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

from fedra.core.jsonfile import JsonObject, JsonValue

#: A value ``json.dumps`` writes (tuples too): for arguments that are read, not changed.
JsonCompatible: TypeAlias = (
    str | int | float | bool | Sequence["JsonCompatible"] | Mapping[str, "JsonCompatible"] | None
)

__all__ = ["JsonCompatible", "JsonObject", "JsonValue"]
