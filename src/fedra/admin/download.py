"""Unpacking a downloaded job: the server's zip is untrusted until every entry is checked.

A result zip holds a job's folder and its workspace (models, tb_events, summary.json, logs), so
unlike a job zip it need not have meta.json at its root. The rules are those of job zips:
relative '/'-separated names only (no absolute paths, drive letters, backslashes or ``..``),
no links or special files, no duplicates, bounded entry count and size (the declared sizes,
then the bytes actually written). Files land in a temporary folder that is renamed into place
at the end, so a refused zip leaves nothing behind. Refusals raise :class:`fedra.core.WireError`.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from fedra.core import ConfigError, WireError
from fedra.core.safezip import UnsafeEntry, entry_path, extract_entries

#: Default bound on the total uncompressed size of a downloaded job.
MAX_DOWNLOAD_BYTES = 8 << 30
#: Default bound on the number of entries in a downloaded job.
MAX_DOWNLOAD_FILES = 100_000


def _refuse(name: str, why: str) -> WireError:
    return WireError(f"refused the downloaded zip: entry {name!r}: {why}")


def extract_result(
    data: bytes,
    dest: Path,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    max_files: int = MAX_DOWNLOAD_FILES,
) -> int:
    """Extract the zip ``data`` into the new folder ``dest``; return the number of files.

    ``dest`` must not exist yet. Raises WireError for anything unsafe or malformed, leaving no
    trace, and ConfigError when ``dest`` already exists.
    """
    dest = Path(dest)
    if dest.exists() or dest.is_symlink():
        raise ConfigError(f"cannot download into {dest}: it already exists")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise WireError(f"the downloaded job is not a valid zip archive: {exc}") from exc
    with zf:
        plan = _plan(zf.infolist(), max_bytes, max_files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.download-"))
        try:
            files = _extract(zf, plan, tmp, max_bytes)
            tmp.chmod(0o755)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return files


def _plan(
    infos: list[zipfile.ZipInfo], max_bytes: int, max_files: int
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check every entry before anything is written."""
    if len(infos) > max_files:
        raise WireError(f"refused the downloaded zip: {len(infos)} entries, at most {max_files}")
    declared = 0
    seen: set[str] = set()
    files: set[PurePosixPath] = set()
    parents: set[PurePosixPath] = set()
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in infos:
        path = _check_entry(info)
        key = str(path).casefold()
        if key in seen:
            raise _refuse(info.filename, "duplicate name")
        seen.add(key)
        parents.update(path.parents)
        if not info.is_dir():
            files.add(path)
            declared += info.file_size
            if declared > max_bytes:
                raise _refuse(info.filename, f"more than {max_bytes} bytes uncompressed in all")
        plan.append((info, path))
    if clash := sorted(files & parents):
        raise _refuse(str(clash[0]), "both a file and a folder")
    return plan


def _check_entry(info: zipfile.ZipInfo) -> PurePosixPath:
    try:
        return entry_path(info)
    except UnsafeEntry as exc:
        raise _refuse(exc.entry, exc.detail) from None


def _extract(
    zf: zipfile.ZipFile,
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    tmp: Path,
    max_bytes: int,
) -> int:
    """Write the planned entries under ``tmp``; the number of files written."""
    try:
        return extract_entries(zf, plan, tmp, max_bytes)
    except UnsafeEntry as exc:
        raise _refuse(exc.entry, exc.detail) from exc
