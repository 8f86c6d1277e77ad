"""RunStore: model files, JSON results, snapshots, and refused file names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from fedra.core import FLModel, Snapshot, WireError, readonly
from fedra.serverapp import RunStore, load_npz
from fedra.serverapp.runstore import write_npy
from fedra.transport import Spool


def _params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "conv.weight": rng.normal(size=(2, 3, 3)).astype(np.float32),
        "bias": rng.normal(size=(4,)),
        "steps": np.array(7, dtype=np.int64),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "fortran": np.asfortranarray(rng.normal(size=(3, 2))),
    }


def _assert_same(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys()
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array)


def test_model_round_trip(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    params = _params()
    model = FLModel(params=readonly(params), metrics={"acc": 0.9, "tag": "x"}, current_round=3)
    store.save("round-003", model)
    loaded = store.load_model("round-003")
    assert loaded is not None and loaded.params is not None
    _assert_same(loaded.params, params)
    info = json.loads((tmp_path / "models" / "round-003.json").read_text())
    assert info["metrics"] == {"acc": 0.9, "tag": "x"}
    assert info["round"] == 3
    assert info["params_type"] == "full"
    assert info["bytes"] == sum(a.nbytes for a in params.values())
    # Nothing temporary is left next to the files.
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "round-003.json",
        "round-003.npz",
    ]


def test_missing_model_is_none(tmp_path: Path) -> None:
    assert RunStore(tmp_path).load_model("final") is None


def test_save_overwrites(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.save("final", FLModel(params={"w": np.zeros(2)}))
    store.save("final", FLModel(params={"w": np.ones(3)}))
    loaded = store.load_model("final")
    assert loaded is not None and loaded.params is not None
    np.testing.assert_array_equal(loaded.params["w"], np.ones(3))


@pytest.mark.parametrize("name", ["file", "allow_pickle", "mmap_mode", "fix_imports"])
def test_param_names_that_are_np_load_arguments(tmp_path: Path, name: str) -> None:
    store = RunStore(tmp_path)
    params = {name: np.arange(3.0), "other": np.ones(1)}
    store.save("m", FLModel(params=params))
    loaded = store.load_model("m")
    assert loaded is not None and loaded.params is not None
    _assert_same(loaded.params, params)


@pytest.mark.parametrize(
    "name", ["..", "../evil", "a/b", "/abs", "a..b", ".hidden", "", "x" * 101, "a\\b", "a b"]
)
def test_bad_names_refused(tmp_path: Path, name: str) -> None:
    store = RunStore(tmp_path)
    model = FLModel(params={"w": np.zeros(1)})
    with pytest.raises(ValueError, match="invalid file name"):
        store.save(name, model)
    with pytest.raises(ValueError, match="invalid file name"):
        store.save_json(name, {})
    with pytest.raises(ValueError, match="invalid file name"):
        store.load_model(name)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_save_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.save_json("cross_site_eval", {"matrix": {"global": {"site-1": {"acc": 0.5}}}})
    data = json.loads((tmp_path / "cross_site_eval.json").read_text())
    assert data == {"matrix": {"global": {"site-1": {"acc": 0.5}}}}


def test_snapshot_round_trip(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert store.load_snapshot() is None
    params = _params()
    state = {"round": 4, "best": None, "order": ["site-2", "site-1"], "nested": {"a": 1.5}}
    store.save_snapshot(1, Snapshot("FedAvg", state, readonly(params)))
    saved = store.load_snapshot()
    assert saved is not None
    index, snapshot = saved
    assert index == 1
    assert snapshot.workflow == "FedAvg"
    assert snapshot.state == state
    _assert_same(snapshot.arrays, params)
    # A later snapshot replaces the earlier one.
    store.save_snapshot(2, Snapshot("Cyclic", {"round": 1}, {}))
    saved = store.load_snapshot()
    assert saved is not None
    assert saved[0] == 2
    assert (saved[1].workflow, saved[1].state, saved[1].arrays) == ("Cyclic", {"round": 1}, {})


def test_unreadable_model_file_is_a_wire_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip archive at all")
    with pytest.raises(WireError, match=r"bad\.npz"):
        load_npz(path)


def test_object_arrays_refused_and_nothing_half_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.save("final", FLModel(params={"w": np.ones(2)}))
    evil = FLModel(params={"w": np.ones(2), "obj": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError):
        store.save("final", evil)
    # The earlier file is intact and no temporary file remains.
    loaded = store.load_model("final")
    assert loaded is not None and loaded.params is not None
    np.testing.assert_array_equal(loaded.params["w"], np.ones(2))
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["final.json", "final.npz"]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(20)[::2],  # not contiguous
        np.array(3.5),
        np.zeros((0, 5), np.int8),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.zeros(3, dtype=[("a", "<f4"), ("b", "<i8")]),
        np.arange(3 * (1 << 20) // 4 + 5, dtype=np.float32),  # several write chunks
    ],
)
def test_npy_members_are_the_bytes_numpy_writes(array: np.ndarray) -> None:
    ours, numpys = io.BytesIO(), io.BytesIO()
    write_npy(ours, array)
    np.lib.format.write_array(numpys, array, allow_pickle=False)
    assert ours.getvalue() == numpys.getvalue()


def test_object_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="pickle"):
        write_npy(io.BytesIO(), np.array([{"a": 1}], dtype=object))


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_saving_a_parked_model_leaves_its_pages_on_disk(tmp_path: Path) -> None:
    # FedAvg saves best.npz from the parked global model while a round's sum is in memory:
    # the pages written must not stay in the process (that was one more model of peak RSS).
    parked = Spool(tmp_path / "spool", threshold=1).park(
        {"w": np.arange(16 << 20, dtype=np.float32)}  # 64 MiB
    )
    store = RunStore(tmp_path / "run")
    before = _rss_file_kib()
    store.save("best", FLModel(params=readonly(parked), metrics={"accuracy": 0.9}))
    grown = _rss_file_kib() - before
    assert grown < 8 << 10, f"saving a parked 64 MiB model left {grown} KiB of it resident"
    np.testing.assert_array_equal(store.load_model("best").params["w"], parked["w"])  # type: ignore[union-attr]
