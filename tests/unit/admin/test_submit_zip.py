"""``fedra job submit x.zip``: a zip of a job folder is accepted, unpacked as the server would."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from admin_fakes import FakeServer

from fedra.admin import Session
from fedra.core import ConfigError
from fedra.job import JobArchiveError, zip_job

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _zip_with_top_folder(folder: Path, dest: Path) -> Path:
    """A zip as `zip -r job.zip hello-numpy` writes it: everything under one top folder."""
    base = str(dest.with_suffix(""))
    archive = Path(shutil.make_archive(base, "zip", folder.parent, folder.name))
    assert archive == dest
    return archive


def test_a_zip_of_a_job_folder_is_submitted_as_the_folder_would_be(
    session: Session, server: FakeServer, tmp_path: Path
) -> None:
    archive = _zip_with_top_folder(EXAMPLES / "hello-numpy", tmp_path / "hello.zip")
    assert session.submit_job(archive) == "new1"
    assert server.uploads == [zip_job(EXAMPLES / "hello-numpy")]
    flat = tmp_path / "flat.zip"  # meta.json at the root of the zip
    flat.write_bytes(zip_job(EXAMPLES / "hello-numpy"))
    session.submit_job(flat)
    assert server.uploads[1] == server.uploads[0]


def test_an_unsafe_zip_is_refused_before_anything_is_sent(
    session: Session, server: FakeServer, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("meta.json", '{"name": "x", "deploy_map": {"app": ["@ALL"]}}')
        zf.writestr("../outside.py", "print('escaped')")
    archive = tmp_path / "evil.zip"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(JobArchiveError, match=r"\.\./outside\.py"):
        session.submit_job(archive)
    assert server.requests == []
    assert not (tmp_path / "outside.py").exists()


def test_a_file_that_is_not_a_zip_is_named(session: Session, tmp_path: Path) -> None:
    text = tmp_path / "job.txt"
    text.write_text("not a job")
    with pytest.raises(ConfigError, match="is a file, not a job folder or a zip of one"):
        session.submit_job(text)


def test_a_zip_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    from fedra.job import job_folder

    archive = tmp_path / "big.zip"
    archive.write_bytes(zip_job(EXAMPLES / "hello-numpy"))
    with (
        pytest.raises(JobArchiveError, match="at most 100 bytes"),
        job_folder(archive, max_bytes=100),
    ):
        pass


def test_fedra_job_validate_takes_a_zip(tmp_path: Path) -> None:
    archive = _zip_with_top_folder(EXAMPLES / "hello-numpy", tmp_path / "hello.zip")
    done = subprocess.run(
        [sys.executable, "-m", "fedra.cli", "job", "validate", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "job 'hello-numpy' is valid" in done.stdout
