"""The frame layout shared by the encoder and the decoder, its limits, and an encoded frame.

A frame is::

    b"FDRA" | u8 version | u32 LE header length | FrameHeader (protobuf) | zero padding | tensors

The tensor data starts at the first multiple of :data:`ALIGN` after the header, and every tensor
starts at a multiple of :data:`ALIGN` (zero padding in between), so that the arrays a decoder
builds over a received buffer are aligned for every allowed dtype. Tensors follow each other in
the order the header lists them, with no other gaps and nothing after the last one: for a
given header there is exactly one valid frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

MAGIC = b"FDRA"
VERSION = 1
#: magic, version, header length.
PREFIX = struct.Struct("<4sBI")
ALIGN = 16

#: Default limit on the size of one frame (and of one message on a local channel).
DEFAULT_MAX_FRAME = 8 << 30
MAX_HEADER_SIZE = 64 << 20
MAX_TENSORS = 100_000
#: Longest tensor name or envelope kind, in UTF-8 bytes.
MAX_NAME_BYTES = 1024
MAX_NDIM = 32
#: Default size of the pieces :meth:`EncodedFrame.chunks` yields.
DEFAULT_CHUNK_SIZE = 4 << 20

#: The numpy dtypes allowed on the wire, by name; all little-endian, none holding objects.
ALLOWED_DTYPES: dict[str, np.dtype[np.generic]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}

_ZEROS = bytes(ALIGN)


def align_up(n: int) -> int:
    """The first multiple of :data:`ALIGN` at or after ``n``."""
    return -(-n // ALIGN) * ALIGN


def padding(n: int) -> bytes:
    """The zero bytes that pad position ``n`` up to the next multiple of :data:`ALIGN`."""
    return _ZEROS[: align_up(n) - n]


@dataclass(frozen=True)
class EncodedFrame:
    """A frame ready to send, as pieces: the head, then each tensor's memory and its padding.

    The tensor pieces are views of the arrays' memory, not copies: send or join them before the
    arrays change.
    """

    #: Prefix, header and the padding after it.
    head: bytes
    #: Tensor bytes and zero padding, in frame order.
    body: Sequence[memoryview | bytes]

    @property
    def nbytes(self) -> int:
        """Total size of the frame in bytes."""
        return len(self.head) + sum(len(part) for part in self.body)

    def parts(self) -> Iterator[memoryview | bytes]:
        """The pieces of the frame in order, as they are (no copies, sizes vary)."""
        yield self.head
        yield from self.body

    def tobytes(self) -> bytes:
        """The whole frame as one bytes object."""
        return b"".join(self.parts())

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[memoryview | bytes]:
        """The frame in pieces of exactly ``chunk_size`` bytes (the last one may be shorter).

        Large arrays are yielded as slices of their own memory; small pieces are gathered
        into one chunk. The frame is never built as a whole.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        return self._chunks(chunk_size)

    def _chunks(self, chunk_size: int) -> Iterator[memoryview | bytes]:
        pending = bytearray()
        for part in self.parts():
            view = memoryview(part)
            pos = 0
            while pos < len(view):
                if not pending and len(view) - pos >= chunk_size:
                    yield view[pos : pos + chunk_size]
                    pos += chunk_size
                    continue
                take = min(chunk_size - len(pending), len(view) - pos)
                pending += view[pos : pos + take]
                pos += take
                if len(pending) == chunk_size:
                    yield bytes(pending)
                    pending.clear()
        if pending:
            yield bytes(pending)
