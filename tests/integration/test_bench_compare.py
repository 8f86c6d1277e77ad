"""The comparison harness (bench/compare) on Fedra alone: no peer is installed or run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from bench.compare import harness
from bench.compare.report import BEGIN, END, Results, fmt, write_docs

BAD_SCRIPT = """
import numpy as np

import fedra
import fedra.client as flare

flare.init()
while flare.is_running():
    model = flare.receive()
    params = model.params or {"weights": np.zeros((3, 3), dtype=np.float32)}
    flare.send(fedra.FLModel(params={k: v + 2 for k, v in params.items()},
                             meta={"num_samples": 1}))
"""


@pytest.fixture
def no_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installing a peer fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a peer was to be installed: {args}")

    monkeypatch.setattr(harness, "ensure", refuse)


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    docs = tmp_path / "benchmarks.md"
    if not docs.exists():
        docs.write_text(f"# Benchmarks\n\nbefore\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    return [
        "--systems", "fedra", "--rows", "sim-2", "--reps", "2", "--rounds", "3",
        "--venvs", str(tmp_path / "venvs"), "--results", str(tmp_path / "results.json"),
        "--docs", str(docs), "--workdir", str(tmp_path / "work"), *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_fedra_alone_gives_a_table_and_the_docs_block(
    tmp_path: Path, no_peers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert harness.main(run_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "simulator, 3x3, 2 sites" in out
    assert "per round (s)" in out
    assert "FLARE" not in out.splitlines()[0]  # Fedra's column only
    data = json.loads((tmp_path / "results.json").read_text())
    row = data["rows"]["sim-2"]
    per_round = row["metrics"]["per round"]["values"]["fedra"]
    runs = row["metrics"]["run"]["values"]["fedra"]
    assert len(per_round) == 2 and len(runs) == 2  # two runs, alternating with nobody
    assert all(0 < r < w for r, w in zip(per_round, runs, strict=True))
    assert row["errors"] == {}
    docs = (tmp_path / "benchmarks.md").read_text()
    assert docs.startswith("# Benchmarks\n\nbefore\n\n")
    assert docs.rstrip().endswith("after")
    block = docs.split(BEGIN)[1].split(END)[0]
    assert "old" not in block
    assert "| simulator, 3x3, 2 sites | per round (s) |" in block
    expected = fmt(statistics.median(per_round), "s")
    assert f"| simulator, 3x3, 2 sites | per round (s) | {expected} |" in block
    assert not (tmp_path / "venvs" / "nvflare").exists()
    assert not (tmp_path / "venvs" / "flower").exists()
    # --render-only rewrites the block from the saved results, running nothing.
    (tmp_path / "benchmarks.md").write_text(f"# B\n\n{BEGIN}\nstale\n{END}\n")
    assert harness.main([*run_args(tmp_path), "--render-only"]) == 0
    again = (tmp_path / "benchmarks.md").read_text()
    assert "stale" not in again
    assert "| simulator, 3x3, 2 sites | per round (s) |" in again
    assert json.loads((tmp_path / "results.json").read_text())["rows"]["sim-2"] == row


@pytest.mark.slow
def test_a_wrong_final_model_fails_naming_system_and_row(
    tmp_path: Path, no_peers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad_train.py"
    bad.write_text(BAD_SCRIPT)
    code = harness.main(run_args(tmp_path, "--fedra-script", str(bad), "--no-docs"))
    assert code == 2
    err = capsys.readouterr().err
    assert "WRONG FINAL MODEL: system=fedra row=sim-2" in err
    assert "instead of all 3.0" in err  # every weight is 6 after 3 rounds of +2


def test_check_final_accepts_the_right_model_only() -> None:
    good = {"min": 5.0, "max": 5.0, "elements": 9, "arrays": 1}
    harness.check_final("flower", "sim-8", good, 5, "3x3")
    with pytest.raises(harness.WrongResult, match=r"system=flower row=sim-8: .*4 weights"):
        harness.check_final("flower", "sim-8", {**good, "elements": 4}, 5, "3x3")
    with pytest.raises(harness.WrongResult, match=r"system=nvflare row=big-100MB"):
        harness.check_final("nvflare", "big-100MB", {**good, "elements": 25_000_000}, 4, "100MB")
    with pytest.raises(harness.WrongResult, match="no final model"):
        harness.check_final("fedra", "deploy (3x3)", None, 5, "3x3")


def test_rows_and_groups() -> None:
    assert harness.parse_rows("sim", skip_1gb=False) == ["sim-2", "sim-8", "sim-100", "sim-1000"]
    assert "big-1GB" not in harness.parse_rows("all", skip_1gb=True)
    assert harness.parse_rows("deploy,sim-8", skip_1gb=False) == ["sim-8", "deploy"]
    with pytest.raises(SystemExit, match="unknown row"):
        harness.parse_rows("sim-3", skip_1gb=False)


def test_results_table_has_medians_and_ratios(tmp_path: Path) -> None:
    results = Results()
    results.start_row("sim-2", "simulator, 3x3, 2 sites", 0, "now", "settings", ["fedra"])
    for fedra, peer in ((0.001, 0.1), (0.003, 0.3), (0.002, 0.2)):
        results.add("sim-2", "per round", "s", "fedra", fedra)
        results.add("sim-2", "per round", "s", "flower", peer)
    results.error("sim-2", "nvflare", "timeout after 420 s (log: x)")
    headers, rows = results.table(["fedra", "nvflare", "flower"])
    assert headers[-2:] == ["Fedra/FLARE", "Fedra/Flower"]
    assert rows == [[
        "simulator, 3x3, 2 sites", "per round (s)", "0.0020", "no result in 420 s", "0.200",
        "-", "0.010",
    ]]  # fmt: skip
    path = tmp_path / "doc.md"
    path.write_text("# Doc\n")
    write_docs(path, "block one")
    write_docs(path, "block two")
    text = path.read_text()
    assert text.count(BEGIN) == 1 and "block two" in text and "block one" not in text


def test_a_row_run_for_some_systems_keeps_the_others() -> None:
    results = Results()
    results.start_row("sim-8", "simulator, 3x3, 8 sites", 1, "day 1", "s", ["fedra", "flower"])
    results.add("sim-8", "per round", "s", "fedra", 0.001)
    results.add("sim-8", "per round", "s", "flower", 0.2)
    results.error("sim-8", "nvflare", "failed")
    results.start_row("sim-8", "simulator, 3x3, 8 sites", 1, "day 2", "s", ["flower", "nvflare"])
    results.add("sim-8", "per round", "s", "flower", 0.3)
    assert results.medians("sim-8", "per round") == {"fedra": 0.001, "flower": 0.3}
    row = results.data["rows"]["sim-8"]
    assert row["errors"] == {}
    assert row["when"] == "day 2; other systems day 1"
