"""Frames of the gRPC stream: a message cut into pieces, each encoded as a protobuf ``Frame``.

:func:`encode_frame` builds a frame with one copy of its data; :func:`frame_pieces` cuts an
encoded envelope into frame-sized pieces, its head apart from its body; :class:`SharedBody`
frames one model's body once for several connections (a broadcast).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from fedra.core import release_pages
from fedra.core.filemap import file_region
from fedra.wire import EncodedFrame, Envelope, prepare_envelope

#: Bytes of envelope data in one frame (the last frame of an envelope may carry fewer). Each
#: frame is copied on its way through gRPC and a stream holds a few at a time, so with 32
#: sites 1 MiB frames cost the server about 40 MiB more than 256 KiB ones (measured with a
#: 100 MB model; rounds were faster with 32 sites on 2 cores, the same with 2 sites).
FRAME_SIZE = 1 << 18
#: Bytes of model data in one frame of a :class:`SharedBody` (every connection's gRPC stream
#: holds its own copy of the frame it is sending).
SHARED_FRAME_SIZE = FRAME_SIZE


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_frame(data: memoryview | bytes, *, total: int, last: bool) -> bytes:
    """The protobuf encoding of ``Frame(total=total, data=data, last=last)``.

    Byte for byte what ``Frame.SerializeToString`` gives, built with a single copy of ``data``
    (building a Frame message first copies the data three times, at about 1 GB/s).
    """
    head = b""
    if total:
        head += b"\x08" + _varint(total)
    if len(data):
        head += b"\x12" + _varint(len(data))
    return b"".join((head, data, b"\x18\x01" if last else b""))


def framed(data: memoryview | bytes, *, total: int, last: bool) -> bytes:
    """:func:`encode_frame`, then the source pages let go when they lie in a read-only file
    map (a spooled model is read once, front to back: its pages need not stay resident)."""
    frame = encode_frame(data, total=total, last=last)
    if isinstance(data, memoryview):
        release_pages(data)
    return frame


def frame_pieces(encoded: EncodedFrame, size: int) -> Iterator[memoryview | bytes]:
    """The pieces of ``encoded``: its head in frames of its own, then its body; a message
    of at most ``size`` bytes in one piece.

    The head (prefix and header) of a big message travels apart so that a receiver learns
    what it is from a small first frame, and so that the body's frames are the same whatever
    the head. A small one (a task or a result of a small model, a heartbeat) goes whole: each
    frame costs both ends a gRPC message, and the receiving side a wake-up of each of its
    reading threads; the first frame still begins with the head.
    """
    if encoded.body and encoded.nbytes <= size:
        yield encoded.tobytes()
        return
    yield from EncodedFrame(head=encoded.head, body=()).chunks(size)
    if encoded.body:
        yield from EncodedFrame(head=b"", body=encoded.body).chunks(size)


class SharedBody:
    """The body (tensor bytes) of one model sent to several connections, framed once.

    Each frame is encoded when the first connection needs it and dropped once every reader
    has taken it (or left), so the readers share the frames instead of holding a copy each;
    a reader that falls behind keeps at most the frames between it and the fastest one.
    ``readers`` is the number of ``send_shared`` calls (or
    :meth:`leave` calls, for targets that will not send) that will use it.
    """

    def __init__(self, model_envelope: Envelope, readers: int, size: int = SHARED_FRAME_SIZE):
        body = list(prepare_envelope(model_envelope).body)
        self.nbytes = sum(len(part) for part in body)
        self.count = -(-self.nbytes // size)
        self._size = size
        # A body that lies in a file (a spooled model) is framed from the file by each reader
        # on its own: frames are not kept for slower readers, whatever their number and speed.
        self._region = file_region(body) if body else None
        self._chunks = EncodedFrame(head=b"", body=body).chunks(size) if body else iter(())
        self._made = 0
        self._lock = threading.Lock()
        self._frames: dict[int, bytes] = {}
        self._left: dict[int, int] = {}  # index -> readers still to take that frame
        self._readers = readers

    def take(self, index: int) -> bytes:
        """The encoded frame ``index`` (frames are taken in order by each reader)."""
        last = index == self.count - 1
        if self._region is not None:
            mapped, offset, length = self._region
            start = offset + index * self._size
            end = offset + min(length, (index + 1) * self._size)
            return framed(memoryview(mapped)[start:end], total=0, last=last)
        with self._lock:
            while self._made <= index:
                chunk = next(self._chunks)
                made_last = self._made == self.count - 1
                self._frames[self._made] = framed(chunk, total=0, last=made_last)
                self._left[self._made] = self._readers
                self._made += 1
            frame = self._frames[index]
            self._drop(index)
            return frame

    def _drop(self, index: int) -> None:
        left = self._left[index] - 1
        if left:
            self._left[index] = left
        else:
            del self._left[index], self._frames[index]

    def leave(self, index: int = 0) -> None:
        """A reader stops before frame ``index``: the frames from there on wait for it no more."""
        with self._lock:
            self._readers -= 1
            for i in range(index, self._made):
                if i in self._left:
                    self._drop(i)
