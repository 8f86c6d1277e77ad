"""The user guides say what the code does: examples listed, job-format claims that hold."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_index_links_every_example() -> None:
    index = (DOCS / "index.md").read_text()
    examples = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "meta.json").is_file())
    assert examples, "no examples found"
    missing = [name for name in examples if f"(../examples/{name})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def _row(text: str, first_cell: str) -> str:
    match = re.search(rf"^\| {re.escape(first_cell)} \|.*$", text, re.MULTILINE)
    assert match, f"no row {first_cell!r}"
    return match.group(0)


def test_job_format_says_the_simulator_checks_mandatory_clients() -> None:
    # tests/integration/test_simulator.py::test_mandatory_site_missing_is_a_config_error
    row = _row((DOCS / "job-format.md").read_text(), "`mandatory_clients`")
    assert "not used by the simulator" not in row
    assert "simulator refuses" in row


def test_job_format_says_validate_catches_a_missing_script() -> None:
    # tests/integration/test_simulator.py::test_script_outside_custom_is_refused
    text = (DOCS / "job-format.md").read_text()
    assert "first task of each site" not in text
    assert _row(text, "`script` file missing").count("|") == 3  # the validate table: 2 columns
