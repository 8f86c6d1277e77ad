"""Row L3 and the npz bomb: a job zip's own bytes are bounded and all accounted for, and the
arrays of a job's .npz files are bounded from their headers before anything is inflated."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fedra.core import ConfigError, WireError
from fedra.job import JobArchiveError, unzip_job
from fedra.serverapp.persistor import ModelPersistor
from fedra.serverapp.runstore import load_npz, npz_nbytes

META = b'{"name": "tiny", "deploy_map": {"app": ["@ALL"]}}'


def _zip(junk_between: bytes = b"", junk_before_directory: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", META)
        _junk(zf, junk_between)
        zf.writestr("app/custom/a.txt", b"a" * 100)
        _junk(zf, junk_before_directory)
    return buffer.getvalue()


def _junk(zf: zipfile.ZipFile, junk: bytes) -> None:
    """Write ``junk`` where the next entry (or the central directory) would begin."""
    assert zf.fp is not None
    zf.fp.seek(zf.start_dir)
    zf.fp.write(junk)
    zf.start_dir = zf.fp.tell()


def test_a_clean_zip_is_extracted(tmp_path: Path) -> None:
    assert (unzip_job(_zip(), tmp_path / "job") / "meta.json").read_bytes() == META


def test_a_zip_written_with_data_descriptors_is_extracted(tmp_path: Path) -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            view = memoryview(b)  # type: ignore[arg-type]
            self.data += view
            return view.nbytes

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", META)
        with zf.open("app/x.bin", "w") as member:
            member.write(b"x" * 5000)
    assert (unzip_job(bytes(out.data), tmp_path / "job") / "app" / "x.bin").stat().st_size == 5000


@pytest.mark.parametrize(
    ("data", "entry"),
    [
        (b"\x00" * 4096 + _zip(), "meta.json"),  # junk before the first entry
        (_zip(junk_between=b"\x00" * 4096), "app/custom/a.txt"),
        (_zip(junk_before_directory=b"\x00" * 4096), "(archive)"),
    ],
)
def test_junk_anywhere_in_the_zip_is_refused(tmp_path: Path, data: bytes, entry: str) -> None:
    zipfile.ZipFile(io.BytesIO(data)).testzip()  # python's zipfile reads them all
    with pytest.raises(JobArchiveError) as refused:
        unzip_job(data, tmp_path / "job")
    assert refused.value.entry == entry and "4096" in str(refused.value)
    assert not (tmp_path / "job").exists()


def test_the_archive_bytes_are_bounded(tmp_path: Path) -> None:
    data = _zip()
    with pytest.raises(JobArchiveError, match=f"at most {len(data) - 1} bytes"):
        unzip_job(data, tmp_path / "job", max_archive_bytes=len(data) - 1)
    unzip_job(data, tmp_path / "job", max_archive_bytes=len(data))


def _compressed_zeros(path: Path, nbytes: int) -> Path:
    np.savez_compressed(path, w=np.zeros(nbytes // 8), b=np.ones(3, dtype=np.int32))
    return path


def test_npz_sizes_come_from_the_headers(tmp_path: Path) -> None:
    path = _compressed_zeros(tmp_path / "m.npz", 32 << 20)
    assert path.stat().st_size < 64 << 10
    assert (32 << 20) + 12 <= npz_nbytes(path) <= (32 << 20) + 12 + 512  # + the .npy headers


def test_an_npz_that_expands_past_the_bound_is_refused_before_it_is_inflated(
    tmp_path: Path,
) -> None:
    path = _compressed_zeros(tmp_path / "bomb.npz", 32 << 20)
    with pytest.raises(
        WireError, match=r"bomb\.npz: its arrays take \d+ bytes once loaded, more than the 16777216"
    ):
        load_npz(path, max_bytes=16 << 20)
    assert load_npz(path, max_bytes=64 << 20)["w"].shape == (4 << 20,)


def test_an_npz_that_is_not_one_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(WireError, match=r"junk\.npz: not a readable \.npz file"):
        npz_nbytes(path)


def test_a_jobs_initial_model_is_checked_when_the_job_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fedra.core.safezip

    custom = tmp_path / "custom"
    custom.mkdir()
    _compressed_zeros(custom / "initial.npz", 4 << 20)
    persistor = ModelPersistor(initial_npz="initial.npz")
    persistor.check_app(custom)  # within the 1 GiB a job may unpack
    monkeypatch.setattr(fedra.core.safezip, "MAX_JOB_BYTES", 1 << 20)
    with pytest.raises(ConfigError, match=r"initial_npz 'initial\.npz': its arrays take"):
        persistor.check_app(custom)
    with pytest.raises(ConfigError, match="more than a job may unpack"):
        persistor.initial_model(custom, load_class=lambda name: None)
