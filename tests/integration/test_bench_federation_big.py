"""bench.federation's server-built models (--generate, sizes above the job limit), its
memory/disk check and its streaming check of the final model; one tiny POC run."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from bench import federation
from bench.federation import (
    JOB_FILES,
    FinalModelError,
    build_job,
    check_final_model,
    estimate_resources,
    layout_bytes,
    model_layout,
    parse_size,
    plan_jobs,
    server_built,
)
from fedra.job import activate_custom_dirs, load_custom_class
from fedra.job.archive import MAX_JOB_BYTES
from fedra.job.folder import build_persistor, load_job
from fedra.serverapp.runstore import write_npz

GB = 10**9


@pytest.fixture(autouse=True)
def forget_job_code() -> Iterator[None]:
    """Take the job folders' custom/ code these tests load off sys.path again."""
    yield
    activate_custom_dirs()


def test_4gb_layout_has_one_array_above_2_gib() -> None:
    spec = parse_size("4GB")  # above the job limit: parsed, no longer refused
    assert spec.total_bytes == 4 * GB > MAX_JOB_BYTES
    assert server_built(spec, generate=False)
    layout = model_layout(spec, generated=True)
    sizes = sorted(int(np.prod(s)) * 4 for s in layout.values())
    assert sum(sizes) == layout_bytes(layout) == 4 * GB
    assert len(sizes) == 4
    assert sizes[-1] == 2_500_000_000 > 2**31 > sizes[-2]


def test_shipped_layouts_are_unchanged() -> None:
    # The .npz path keeps its historic layouts: 100 MB in 4 arrays, 1 GB in 8.
    for text, arrays in (("100MB", 4), ("1GB", 8)):
        spec = parse_size(text)
        assert not server_built(spec, generate=False)
        layout = model_layout(spec, generated=False)
        assert len(layout) == arrays
        assert layout_bytes(layout) == spec.total_bytes
    assert server_built(parse_size("3x3"), generate=True)
    assert model_layout(parse_size("3x3"), generated=True) == {"weights": (3, 3)}


def test_server_built_job_gives_untouched_zeros(tmp_path: Path) -> None:
    layout = model_layout(parse_size("1GB"), generated=True)
    folder = build_job(tmp_path / "job", "gen", 2, None, False, layout)
    assert not list(folder.rglob("*.npz"))  # nothing of the model travels in the job
    app = load_job(folder).server_app
    persistor = build_persistor(app)
    assert type(persistor).__name__ == "ZerosPersistor"
    before = psutil.Process().memory_info().rss
    model = persistor.initial_model(app.custom_dir, lambda name: None)
    grown = psutil.Process().memory_info().rss - before
    assert model is not None and model.params is not None
    assert {k: v.shape for k, v in model.params.items()} == layout
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert grown < 100 * 2**20, f"building 1 GB of zeros grew RSS by {grown} bytes"
    assert not model.params["layer3"][::1_000_000].any()


def test_bad_layout_is_refused() -> None:
    cls = load_custom_class(JOB_FILES, "zeros_persistor.ZerosPersistor")
    with pytest.raises(ValueError, match="'b'"):
        cls(layout={"a": [2], "b": [-1]})
    with pytest.raises(ValueError, match="non-empty"):
        cls(layout={})


def write_model(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:
        write_npz(handle, arrays)
    return path


def test_final_model_check_reads_in_chunks_and_names_the_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(federation, "CHECK_CHUNK", 64)  # 16 float32 at a time
    layout = {"a": (10,), "b": (5, 20)}
    good = {k: np.full(s, 3.0, dtype=np.float32) for k, s in layout.items()}
    path = write_model(tmp_path / "good.npz", good)
    assert check_final_model(path, layout, 3).startswith("ok: 110 weights = 3")

    bad = {k: v.copy() for k, v in good.items()}
    bad["b"][2, 7] = 2.0  # element 47: in the third chunk of b
    path = write_model(tmp_path / "bad.npz", bad)
    with pytest.raises(FinalModelError, match=r"array 'b' element 47 is 2\.0, expected 3"):
        check_final_model(path, layout, 3)

    with pytest.raises(
        FinalModelError, match=r"array 'a' is float32 \(10,\), expected float32 \(11,\)"
    ):
        check_final_model(tmp_path / "good.npz", {"a": (11,), "b": (5, 20)}, 3)
    with pytest.raises(FinalModelError, match="arrays"):
        check_final_model(tmp_path / "good.npz", {"a": (10,)}, 3)
    with pytest.raises(FinalModelError, match="no final model"):
        check_final_model(tmp_path / "missing.npz", layout, 3)


def test_resource_check_says_what_is_needed_and_available(tmp_path: Path) -> None:
    args = federation.parse_args(["--sizes", "4GB", "--big-rounds", "2"])
    res = estimate_resources(plan_jobs(args), 2, tmp_path / "new", 10 * GB, 100 * GB)
    assert res.folder == tmp_path
    # server 1.5 models, each site 2; disk: parked model + 3 per site spooled, 2 rounds, final
    assert res.memory_need == int(4 * GB * (1.5 + 2 * 2)) + federation.MIN_AVAILABLE
    assert res.disk_need == 4 * GB * (1 + 3 * 2 + 2 + 1)
    [problem] = res.problems
    assert "not enough memory" in problem and "23.07 GB" in problem and "10.00 GB" in problem
    res = estimate_resources(plan_jobs(args), 2, tmp_path, 100 * GB, 20 * GB)
    [problem] = res.problems
    assert "not enough disk" in problem and "40.00 GB" in problem and "20.00 GB" in problem


def test_4gb_dry_run_refuses_or_plans(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        federation.psutil, "virtual_memory", lambda: types.SimpleNamespace(available=8 * GB)
    )
    with pytest.raises(SystemExit, match=r"not enough memory.*8\.00 GB available.*--force"):
        federation.main(["--sizes", "4GB", "--dry-run"])
    assert federation.main(["--sizes", "4GB", "--dry-run", "--force"]) == 0
    out = capsys.readouterr().out
    assert "layer0 2.50 GB" in out and "built by the server job" in out


@pytest.mark.timeout(120)
def test_generated_model_runs_in_a_poc_federation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "figures.json"
    argv = ["--sizes", "2MB", "--generate", "--big-rounds", "2", "--json", str(out_json)]
    assert federation.main(argv) == 0
    text = capsys.readouterr()
    assert "Initial models built by the server job" in text.out
    assert "2MB: round 2/2 done" in text.err
    [job] = json.loads(out_json.read_text())["jobs"]
    assert job["generated"] and job["model_bytes"] == 2 * 10**6
    assert job["final_check"].startswith("ok: 500000 weights = 2 ")
    assert len(job["peaks"]["site_each"]) == 2 and min(job["peaks"]["site_each"]) > 0
    assert job["peaks"]["federation"] >= job["peaks"]["total"] > 0
