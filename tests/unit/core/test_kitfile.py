"""Kit files and msgspec errors: every refusal names the file, the key path and what would do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedra.core import ConfigError
from fedra.core.jsonfile import Problem, convert
from fedra.core.kitfile import ServerFile
from fedra.runtime import ServerKit, SiteKit


def _kit(tmp_path: Path, file: str, data: dict[str, object]) -> Path:
    (tmp_path / "startup").mkdir(exist_ok=True)
    (tmp_path / "startup" / file).write_text(json.dumps(data))
    return tmp_path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "s", "max_jobs": 0}, "max_jobs: expected an integer >= 1, got 0"),
        ({"name": "s", "max_job": 3}, "max_job: unknown key (expected one of: name, project"),
        ({"name": "s", "fed_learn_port": True}, "fed_learn_port: expected a port number"),
        (
            {"name": "s", "overseer": {"name": "o", "host": "h", "port": 0, "url": "u"}},
            "overseer.port: expected a port number 1-65535, got 0",
        ),
        ({"name": "s", "job_store": {"backend": "mysql"}}, "job_store.backend: expected one of"),
        ({"name": "s", "admins": [{"name": "a", "org": "o"}]}, "admins[0].role: missing"),
        ({"org": "o"}, "name: missing; this key is required"),
    ],
)
def test_server_kit_errors_name_file_and_key(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerKit.load(_kit(tmp_path, "fed_server.json", data))
    assert str(caught.value).startswith(f"{tmp_path / 'startup' / 'fed_server.json'}: ")
    assert message in str(caught.value)


def test_kits_read_typed_blocks(tmp_path: Path) -> None:
    overseer = {"name": "o", "host": "h", "port": 8443, "url": "https://h:8443/api/v1"}
    store = {"backend": "sqlite", "path": "/srv/store"}
    _kit(tmp_path, "fed_server.json", {"name": "s", "overseer": overseer, "job_store": store})
    kit = ServerKit.load(tmp_path)
    assert kit.overseer is not None and kit.overseer.url == "https://h:8443/api/v1"
    assert kit.job_store is not None and kit.job_store.path == Path("/srv/store")
    _kit(tmp_path, "fed_client.json", {"name": "site-1", "server_host": "h", "servers": [{}]})
    with pytest.raises(ConfigError, match=r"servers\[0\]\.name: missing"):
        SiteKit.load(tmp_path)


def test_an_entry_of_a_mapping_is_named() -> None:
    """msgspec says ``$.deploy_map[...]`` for a value of a dict; the key is found again."""
    problems: list[Problem] = []

    def fail(problem: Problem) -> Exception:
        problems.append(problem)
        return ValueError(problem.message)

    with pytest.raises(ValueError, match="expected an integer, got 'x'"):
        convert({"a": 1, "b": "x"}, dict[str, int], fail)
    assert problems[-1].path == ("b",)
    with pytest.raises(ValueError, match="expected a non-empty string, got 5"):
        convert({"name": 5}, ServerFile, fail)
    assert problems[-1].key == "name"
