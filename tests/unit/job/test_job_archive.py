"""Job zips: deterministic packing, a round trip through load_job, and hostile zips refused."""

from __future__ import annotations

import io
import shutil
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from fedra.core import ConfigError, JobValidationError
from fedra.job import JobArchiveError, load_job, unzip_job, zip_job

META = b'{"name": "tiny", "deploy_map": {"app": ["@ALL"]}}'


def _zip(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buffer.getvalue()


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    info.create_system = 3
    return info


def _refused(data: bytes, dest: Path, entry: str, **limits: int) -> JobArchiveError:
    with pytest.raises(JobArchiveError) as caught:
        unzip_job(data, dest, **limits)
    assert caught.value.entry == entry
    assert entry in str(caught.value)
    # Nothing half-extracted: neither dest nor a temporary folder next to it.
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []
    return caught.value


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "out" / "job"


@pytest.fixture
def job_copy(examples: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "hello-numpy"
    shutil.copytree(examples / "hello-numpy", folder)
    return folder


# --------------------------------------------------------------------------- packing


def test_round_trip_hello_numpy(examples: Path, dest: Path) -> None:
    data = zip_job(examples / "hello-numpy")
    assert unzip_job(data, dest) == dest
    job = load_job(dest)
    assert job.meta.name == "hello-numpy"
    original = examples / "hello-numpy"
    for path in original.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            assert (dest / path.relative_to(original)).read_bytes() == path.read_bytes()


def test_zip_is_deterministic_and_sorted(job_copy: Path) -> None:
    first = zip_job(job_copy)
    (job_copy / "meta.json").touch()  # a new mtime changes nothing
    assert zip_job(job_copy) == first
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names[0] == "README.md"
    assert "meta.json" in names
    assert "app/custom/train.py" in names


def test_zip_skips_caches_and_hidden_files(job_copy: Path, dest: Path) -> None:
    custom = job_copy / "app" / "custom"
    (custom / "__pycache__").mkdir()
    (custom / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")
    (custom / "stale.pyc").write_bytes(b"x")
    (custom / ".secret").write_text("token")
    (job_copy / ".git").mkdir()
    (job_copy / ".git" / "config").write_text("x")
    names = zipfile.ZipFile(io.BytesIO(zip_job(job_copy))).namelist()
    assert not [n for n in names if "pycache" in n or n.endswith(".pyc") or "/." in f"/{n}"]


def test_zip_keeps_empty_folders_and_links_inside(job_copy: Path, dest: Path) -> None:
    (job_copy / "app" / "empty").mkdir()
    (job_copy / "app" / "custom" / "alias.py").symlink_to("train.py")
    unzip_job(zip_job(job_copy), dest)
    assert (dest / "app" / "empty").is_dir()
    alias = dest / "app" / "custom" / "alias.py"
    assert not alias.is_symlink()
    assert alias.read_bytes() == (job_copy / "app" / "custom" / "train.py").read_bytes()


def test_zip_refuses_links_outside(job_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (job_copy / "app" / "custom" / "leak.txt").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside the job folder"):
        zip_job(job_copy)


def test_zip_refuses_link_loops(job_copy: Path) -> None:
    (job_copy / "app" / "loop").symlink_to(job_copy / "app")
    with pytest.raises(ConfigError, match="folder above"):
        zip_job(job_copy)


def test_zip_needs_a_job_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        zip_job(tmp_path / "missing")
    with pytest.raises(JobValidationError, match=r"meta\.json"):
        zip_job(tmp_path)


# --------------------------------------------------------------------------- unpacking


def test_single_top_folder_is_unwrapped(dest: Path) -> None:
    data = _zip(("tiny/", b""), ("tiny/meta.json", META), ("tiny/app/x.txt", b"x"))
    unzip_job(data, dest)
    assert (dest / "meta.json").read_bytes() == META
    assert (dest / "app" / "x.txt").read_bytes() == b"x"


def test_meta_at_root_is_kept_as_is(dest: Path) -> None:
    unzip_job(_zip(("meta.json", META), ("app/x.txt", b"x")), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["app", "meta.json"]


def test_existing_empty_destination_is_used(dest: Path) -> None:
    dest.mkdir(parents=True)
    unzip_job(_zip(("meta.json", META)), dest)
    assert (dest / "meta.json").is_file()


def test_non_empty_destination_is_refused(dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        unzip_job(_zip(("meta.json", META)), dest)
    assert (dest / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../evil.py",
        "app/../../evil.py",
        "app/..",
        "C:/Windows/evil.dll",
        "c:evil.py",
        "app\\..\\evil.py",
        "app//x.py",
        "./meta2.json",
        "app/\x01x.py",
    ],
)
def test_unsafe_names_are_refused(name: str, dest: Path) -> None:
    data = _zip(("meta.json", META), (zipfile.ZipInfo(name), b"x"))
    error = _refused(data, dest, repr(name) if "\x01" in name else name)
    assert isinstance(error, JobValidationError)


def test_symlink_entries_are_refused(dest: Path) -> None:
    link = _info("app/passwd", stat.S_IFLNK | 0o777)
    _refused(_zip(("meta.json", META), (link, b"/etc/passwd")), dest, "app/passwd")


def test_special_files_are_refused(dest: Path) -> None:
    fifo = _info("app/pipe", stat.S_IFIFO | 0o644)
    _refused(_zip(("meta.json", META), (fifo, b"")), dest, "app/pipe")


def test_duplicate_names_are_refused(dest: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("meta.json", META)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("meta.json", b"{}")
    _refused(buffer.getvalue(), dest, "meta.json")


def test_names_differing_only_in_case_are_refused(dest: Path) -> None:
    _refused(_zip(("meta.json", META), ("Meta.JSON", b"{}")), dest, "Meta.JSON")


def test_file_and_folder_of_the_same_name_are_refused(dest: Path) -> None:
    _refused(_zip(("meta.json", META), ("app", b"x"), ("app/x.py", b"x")), dest, "app")


def test_declared_size_over_the_limit_is_refused(dest: Path) -> None:
    data = _zip(("meta.json", META), ("app/big.bin", bytes(5000)))
    _refused(data, dest, "app/big.bin", max_bytes=4096)


def _patch_headers(
    data: bytes, name: bytes, local: int, central: int, fmt: str, value: int
) -> bytes:
    """Overwrite one field of ``name``'s local and central headers (offsets from their starts)."""
    out = bytearray(data)
    for signature, at, name_at in ((b"PK\x03\x04", local, 26), (b"PK\x01\x02", central, 28)):
        header = out.find(signature)
        while header != -1:
            name_len = struct.unpack_from("<H", out, header + name_at)[0]
            start = header + (30 if name_at == 26 else 46)
            if out[start : start + name_len] == name:
                struct.pack_into(fmt, out, header + at, value)
            header = out.find(signature, header + 4)
    return bytes(out)


def _lie_about_size(data: bytes, name: bytes, size: int) -> bytes:
    """Patch the uncompressed size of ``name`` in both headers, as a zip bomb does."""
    return _patch_headers(data, name, 22, 24, "<I", size)


def test_zip_bomb_lying_about_its_size_is_refused(dest: Path) -> None:
    honest = _zip(("meta.json", META), ("app/bomb.bin", bytes(1 << 20)))
    bomb = _lie_about_size(honest, b"app/bomb.bin", 100)
    assert zipfile.ZipFile(io.BytesIO(bomb)).getinfo("app/bomb.bin").file_size == 100
    _refused(bomb, dest, "app/bomb.bin", max_bytes=4096)


def test_entry_shorter_than_declared_is_refused(dest: Path) -> None:
    honest = _zip(("meta.json", META), ("app/short.bin", b"abc"))
    _refused(_lie_about_size(honest, b"app/short.bin", 10), dest, "app/short.bin")


def test_too_many_files_are_refused(dest: Path) -> None:
    entries = [("meta.json", META)] + [(f"app/{i}.txt", b"") for i in range(5)]
    _refused(_zip(*entries), dest, "(archive)", max_files=5)
    unzip_job(_zip(*entries), dest, max_files=6)


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04" + bytes(40)])
def test_not_a_zip_is_refused(data: bytes, dest: Path) -> None:
    _refused(data, dest, "(archive)")


def test_corrupt_entry_is_refused(dest: Path) -> None:
    data = bytearray(_zip(("meta.json", META), ("app/x.bin", b"payload" * 100)))
    start = data.find(b"app/x.bin") + len(b"app/x.bin")
    data[start + 5 : start + 15] = bytes(10)
    _refused(bytes(data), dest, "app/x.bin")


def test_encrypted_entries_are_refused(dest: Path) -> None:
    plain = _zip(("meta.json", META), ("app/secret.bin", b"x"))
    encrypted = _patch_headers(plain, b"app/secret.bin", 6, 8, "<H", 0x1)
    assert zipfile.ZipFile(io.BytesIO(encrypted)).getinfo("app/secret.bin").flag_bits & 0x1
    _refused(encrypted, dest, "app/secret.bin")


@pytest.mark.parametrize(
    "entries",
    [
        [("app/x.txt", b"x")],
        [("a/meta.json", META), ("b/x.txt", b"x")],
        [("top/deeper/meta.json", META)],
    ],
)
def test_meta_json_must_be_at_the_top(entries: list[tuple[str, bytes]], dest: Path) -> None:
    _refused(_zip(*entries), dest, "meta.json")


def test_failure_midway_leaves_nothing(dest: Path) -> None:
    good = [(f"app/{i}.txt", b"fine") for i in range(20)]
    honest = _zip(("meta.json", META), *good, ("app/zz.bin", bytes(1 << 16)))
    bomb = _lie_about_size(honest, b"app/zz.bin", 10)
    _refused(bomb, dest, "app/zz.bin")
