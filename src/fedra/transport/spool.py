"""Disk-backed buffers for big incoming messages.

A connection with a :class:`Spool` receives every message of at least ``threshold`` bytes
into an unlinked temporary file in the spool's folder instead of a buffer in memory, and
decodes it over a read-only memory map of that file (:class:`fedra.core.FileMap`). A process
that only passes big messages on (the server parent, a site parent) then holds a few frames
of each, not the model: the model's bytes go to the page cache, which the kernel writes back
and evicts under pressure, and the file disappears with the last array that views it (it has
no name from the start, so nothing is left behind after a crash).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from fedra.core import FileMap, FLModel, Params
from fedra.core.filemap import backing, map_file
from fedra.wire import Envelope, decode_envelope, prepare_envelope

#: Messages of this many bytes and more are spooled by default (smaller ones: in memory).
SPOOL_BYTES = 32 << 20


class SpoolError(OSError):
    """A message could not be written to its spool file (disk full, folder gone ...)."""


class Spool:
    """Where big incoming messages go: ``directory`` (created when first needed)."""

    def __init__(self, directory: str | os.PathLike[str], threshold: int = SPOOL_BYTES) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        self.directory = Path(directory)
        self.threshold = threshold

    def wants(self, size: int) -> bool:
        """Whether a message of ``size`` bytes goes to disk."""
        return size >= self.threshold

    def park(self, params: Params) -> Params:
        """``params`` moved to a file: the same values, read-only, mapped from disk.

        For a process that keeps a model it will only read later (a server job keeps the
        global model while a round's results come in). Params below the threshold, params
        already on disk, and params that cannot be written (disk full) are returned as they
        are. Sending parked params on a local channel costs no copy in this process.
        """
        arrays = [a for a in params.values() if a.nbytes]
        if not self.wants(sum(a.nbytes for a in arrays)) or all(
            backing(a) is not None for a in arrays
        ):
            return params
        frame = prepare_envelope(Envelope("parked", {}, FLModel(params=params)))
        try:
            spooled = self.open(frame.nbytes)
            for part in frame.parts():
                spooled.write(part)
            mapped = spooled.finish()
        except SpoolError:
            return params
        model = decode_envelope(memoryview(mapped)).model
        assert model is not None and model.params is not None
        return model.params

    def open(self, size: int) -> SpoolFile:
        """A new, nameless file for one message of ``size`` bytes."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            file = tempfile.TemporaryFile(dir=self.directory, buffering=0)  # noqa: SIM115
        except OSError as err:
            raise SpoolError(f"cannot spool a message in {self.directory}: {err}") from None
        return SpoolFile(file, size, self.directory)


class SpoolFile:
    """One message being written to disk: :meth:`write` its bytes in order, then :meth:`finish`."""

    def __init__(self, file: IO[bytes], size: int, directory: Path) -> None:
        self._file = file
        self._size = size
        self._directory = directory
        self.written = 0

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data``; SpoolError when the disk refuses it (the file is then discarded)."""
        view = memoryview(data)
        try:
            while view.nbytes:
                n = os.write(self._file.fileno(), view)
                self.written += n
                view = view[n:]
        except OSError as err:
            self.discard()
            raise SpoolError(
                f"cannot spool a message of {self._size} bytes in {self._directory}: {err}"
            ) from None

    def finish(self) -> FileMap:
        """The whole message, mapped read-only (the file lives as long as the map)."""
        if self.written != self._size:
            self.discard()
            raise SpoolError(f"spooled {self.written} of {self._size} bytes")
        try:
            return map_file(self._file, readonly=True)
        except (OSError, ValueError) as err:
            self.discard()
            raise SpoolError(f"cannot map a spooled message: {err}") from None

    def discard(self) -> None:
        """Drop the file (its space is freed at once: it has no name)."""
        self._file.close()


def readonly_fd(mapped: FileMap) -> int:
    """A new read-only descriptor of ``mapped``'s file, to hand to another process: it can
    read the file but neither change nor shorten it under this process's map."""
    return os.open(f"/proc/self/fd/{mapped.file.fileno()}", os.O_RDONLY | os.O_CLOEXEC)
