"""Files of a run on the server: models, JSON results and workflow snapshots.

Models are written as ``.npz`` (numpy arrays, never pickled) next to a ``.json`` file with
their metrics; every write goes to a temporary file first and is renamed into place, so a
crash never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fedra.core import FLModel, JsonObject, JsonValue, Snapshot, WireError, release_pages

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SNAPSHOT = "snapshot"


def _check_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise ValueError(f"invalid file name {name!r}")
    return name


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Bytes of an array written to an archive at a time, straight from the array's memory.
WRITE_CHUNK = 1 << 20


def write_npy(member: Any, array: np.ndarray[Any, Any]) -> None:
    """Write ``array`` in ``.npy`` format to the file-like ``member`` (object arrays refused).

    The same bytes as ``np.lib.format.write_array``, without its 16 MiB copies: the data is
    written from the array's own memory, :data:`WRITE_CHUNK` bytes at a time, so saving a
    model that lies in a file map or in the running sum costs no model-sized buffer. The
    pages of an array mapped from a file (a parked model) are released as they are written:
    saving it leaves them on disk, not in this process (FedAvg saves the best model from the
    parked global model while the round's sum is in memory).
    """
    if array.dtype.hasobject:
        raise ValueError("arrays of Python objects cannot be saved (they would need pickle)")
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    header = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(member, header)
    except ValueError:  # a header too long for format 1.0
        np.lib.format.write_array_header_2_0(member, header)
    flat = (array.T if header["fortran_order"] else array).reshape(-1)
    data = flat.view(np.uint8)
    for start in range(0, data.nbytes, WRITE_CHUNK):
        chunk = data[start : start + WRITE_CHUNK]
        member.write(chunk.data)
        release_pages(chunk)  # a no-op for memory that is not a read-only file map


def write_npz(handle: Any, arrays: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Write ``arrays`` as an ``.npz`` archive, array by array (any names, pickle refused)."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                write_npy(member, np.asanyarray(array))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    _atomic_write(path, lambda h: h.write(text))


def npz_nbytes(path: Path) -> int:
    """The bytes the arrays of the ``.npz`` file ``path`` take once loaded.

    Read from each member's declared size and its ``.npy`` header (shape and dtype) only:
    nothing else is inflated, so a small file that would expand to gigabytes costs nothing
    to judge. WireError names the file and member when a header cannot be read.
    """
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                total += max(info.file_size, _member_nbytes(zf, info))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WireError(f"{path.name}: not a readable .npz file: {exc}") from exc
    return total


def _member_nbytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The bytes of the array a ``.npy`` member declares (0 for a member that is no array)."""
    with zf.open(info) as member:
        if member.read(6) != np.lib.format.MAGIC_PREFIX:
            return 0
        member.seek(0)
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"{info.filename}: .npy format {version} is not supported")
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * max(dtype.itemsize, 1)


def load_npz(path: Path, *, max_bytes: int | None = None) -> dict[str, np.ndarray[Any, Any]]:
    """Load arrays saved by :meth:`RunStore.save` (pickle refused).

    With ``max_bytes`` (for files that came from outside, such as a job's initial model) the
    arrays' declared sizes are checked first (:func:`npz_nbytes`): WireError naming the file
    when they would take more, before anything is inflated.
    """
    if max_bytes is not None:
        need = npz_nbytes(path)
        if need > max_bytes:
            raise WireError(
                f"{path.name}: its arrays take {need} bytes once loaded, "
                f"more than the {max_bytes} allowed"
            )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise WireError(f"{path}: not a readable model file: {exc}") from exc


class RunStore:
    """The ModelStore of a run: ``models/``, ``snapshots/`` and JSON results under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.models = root / "models"
        self.snapshots = root / "snapshots"
        self.models.mkdir(parents=True, exist_ok=True)

    def save(self, name: str, model: FLModel) -> None:
        """Save ``model``'s params as ``models/<name>.npz`` and its metrics as ``.json``."""
        _check_name(name)
        params = model.params or {}
        _atomic_write(self.models / f"{name}.npz", lambda h: write_npz(h, params))
        info = {
            "metrics": model.metrics,
            "meta": model.meta,
            "round": model.current_round,
            "params_type": model.params_type.value,
            "bytes": model.nbytes(),
        }
        write_json(self.models / f"{name}.json", info)

    def save_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a JSON result as ``<name>.json``."""
        write_json(self.root / f"{_check_name(name)}.json", data)

    def save_snapshot(
        self, index: int, snapshot: Snapshot, history: Sequence[JsonObject] = ()
    ) -> None:
        """Keep the latest snapshot of workflow number ``index`` (arrays, then state).

        The arrays go to a file of their own name and the state, written last and atomically,
        names it: a crash at any point leaves the previous snapshot or the new one, whole.
        ``history``: the run's round records up to this snapshot, kept in the same file (read
        back with :meth:`load_history`), so a resumed run's history matches its state.
        """
        ref = snapshot.arrays_ref
        if ref is not None and not (self.models / f"{_check_name(ref)}.npz").is_file():
            ref = None
        arrays = {} if ref is not None else snapshot.arrays
        # With a reference, the arrays are already on disk as models/<ref>.npz: not again.
        arrays_file = f"{_SNAPSHOT}-{uuid.uuid4().hex[:12]}.npz"
        _atomic_write(self.snapshots / arrays_file, lambda h: write_npz(h, arrays))
        state = {
            "index": index,
            "workflow": snapshot.workflow,
            "state": snapshot.state,
            "arrays_ref": ref,
            "arrays_file": arrays_file,
            "history": list(history),
        }
        write_json(self.snapshots / f"{_SNAPSHOT}.json", state)
        for old in self.snapshots.glob(f"{_SNAPSHOT}*.npz"):
            if old.name != arrays_file:
                old.unlink(missing_ok=True)

    def drop_snapshots(self) -> None:
        """Delete the snapshots (the job has ended: nothing will resume it)."""
        shutil.rmtree(self.snapshots, ignore_errors=True)

    def load_snapshot(self) -> tuple[int, Snapshot] | None:
        """The latest snapshot, or None."""
        meta_path = self.snapshots / f"{_SNAPSHOT}.json"
        if not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text())
        ref = meta.get("arrays_ref")
        if ref:
            arrays = load_npz(self.models / f"{_check_name(str(ref))}.npz")
        else:
            name = str(meta.get("arrays_file") or f"{_SNAPSHOT}.npz")
            arrays = load_npz(self.snapshots / (_check_name(name.removesuffix(".npz")) + ".npz"))
        return int(meta["index"]), Snapshot(meta["workflow"], dict(meta["state"]), arrays)

    def load_history(self) -> list[JsonValue]:
        """The round records saved with the latest snapshot ([] without one)."""
        meta_path = self.snapshots / f"{_SNAPSHOT}.json"
        if not meta_path.exists():
            return []
        history = json.loads(meta_path.read_text()).get("history")
        return list(history) if isinstance(history, list) else []

    def load_model(self, name: str) -> FLModel | None:
        """A model saved earlier, or None."""
        path = self.models / f"{_check_name(name)}.npz"
        if not path.exists():
            return None
        return FLModel(params=load_npz(path))
