"""Reading a participant's JSON settings: one object, bounded, typed values, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.core.jsonfile import MAX_SETTINGS_BYTES, read_json_object, typed


def test_an_object_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fed.json"
    path.write_text('{"name": "site-1", "port": 8002}')
    assert read_json_object(path) == {"name": "site-1", "port": 8002}


def test_a_missing_file_is_an_error_unless_optional(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found: is this a startup kit folder\?"):
        read_json_object(tmp_path / "nope.json")
    assert read_json_object(tmp_path / "nope.json", required=False) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{bad", "line 1: invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b" " * (MAX_SETTINGS_BYTES + 1), "larger than"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "fed.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        read_json_object(path)
    assert str(path) in str(info.value)


def test_typed_values() -> None:
    path = Path("fed.json")
    data = {"port": 8002, "flag": True, "rate": 2.5, "name": "x"}
    assert typed(data, path, "port", int) == 8002
    assert typed(data, path, "rate", (int, float)) == 2.5
    assert typed(data, path, "missing", int, 7) == 7
    with pytest.raises(ConfigError, match=r"fed\.json: flag: expected int, got True"):
        typed(data, path, "flag", int)  # a bool is not a number here
    with pytest.raises(ConfigError, match="name: expected int or float"):
        typed(data, path, "name", (int, float))
    with pytest.raises(ConfigError, match="missing: expected str, got None"):
        typed(data, path, "missing", str)
