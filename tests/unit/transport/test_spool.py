"""Disk-backed messages: spooled receives, parked params, files handed from parent to child."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from certs_helper import Federation
from transport_helpers import Worker

from fedra.core import FileMap, FLModel, WireError
from fedra.core.filemap import backing, file_region, release_pages
from fedra.transport import (
    ChannelClosed,
    Connection,
    LocalChannel,
    Spool,
    TransportServer,
    connect,
)
from fedra.transport._frames import SharedBody
from fedra.wire import Envelope, decode_envelope, decode_split, encode_envelope, prepare_envelope


def params(seed: int = 0, sizes: tuple[int, ...] = (1000, 70_000, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"a{i}": rng.standard_normal(n).astype(np.float32) for i, n in enumerate(sizes)}


def same(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray]) -> bool:
    assert a is not None
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in b)


def pair(
    *, spool: Spool | None = None, pass_files: bool = False, accept: str | None = None
) -> tuple[LocalChannel, LocalChannel]:
    """(parent, child) over a socketpair."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = LocalChannel(a, spool=spool, pass_files=pass_files)
    child = LocalChannel(b, accept_files=accept)  # type: ignore[arg-type]
    return parent, child


def rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


# -- file maps -------------------------------------------------------------------------
def test_parked_params_keep_their_values_and_live_on_disk(tmp_path: Path) -> None:
    original = params()
    parked = Spool(tmp_path, threshold=1).park(original)
    assert same(parked, original)
    for array in parked.values():
        assert backing(array) is not None
        assert not array.flags.writeable
    assert os.listdir(tmp_path) == []  # nameless: nothing to clean up after a crash


def test_small_params_and_params_already_on_disk_are_not_parked_again(tmp_path: Path) -> None:
    original = params()
    assert Spool(tmp_path, threshold=1 << 30).park(original) is original
    parked = Spool(tmp_path, threshold=1).park(original)
    assert Spool(tmp_path, threshold=1).park(parked) is parked


def test_park_keeps_params_in_memory_when_the_disk_refuses(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    original = params()
    assert Spool(blocker / "spool", threshold=1).park(original) is original


def test_release_pages_lets_read_pages_go_and_keeps_the_data(tmp_path: Path) -> None:
    big = {"w": np.arange(16 << 20, dtype=np.float32)}  # 64 MiB
    parked = Spool(tmp_path, threshold=1).park(big)
    del big
    before = rss_file_kib()
    total = float(parked["w"].sum(dtype=np.float64))  # reads every page
    grown = rss_file_kib() - before
    assert grown > 48 << 10, f"reading 64 MiB mapped only {grown} KiB"
    release_pages(parked["w"])
    assert rss_file_kib() - before < 8 << 10
    assert float(parked["w"].sum(dtype=np.float64)) == total  # mapped back from the file


def test_readers_framing_one_spooled_model_together_leave_it_on_disk(tmp_path: Path) -> None:
    # As the server parent broadcasts: the model was received into a spool file in 1 MiB
    # writes and several connections frame it at once. The page cache holds such a file in
    # large folios, and a fault maps a whole folio, so each reader's release must reach back
    # over the end of the part before (else most of the model stays resident).
    encoded = prepare_envelope(
        Envelope("task", {}, FLModel(params={"w": np.ones(16 << 20, np.float32)}))
    )
    spooled = Spool(tmp_path, threshold=1).open(encoded.nbytes)
    for part in encoded.parts():
        view = memoryview(part).cast("B")
        for at in range(0, view.nbytes, 1 << 20):
            spooled.write(view[at : at + (1 << 20)])
    del encoded, part, view
    model = decode_envelope(memoryview(spooled.finish())).model
    readers = 4
    body = SharedBody(Envelope("task", {}, model), readers, size=1 << 18)
    before = rss_file_kib()
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_file_kib())
            done.wait(0.002)

    def read() -> None:
        for index in range(body.count):
            assert len(body.take(index)) > 1 << 18
            time.sleep(0)  # a connection waits for the network between frames: others run

    watcher = threading.Thread(target=watch)
    threads = [threading.Thread(target=read) for _ in range(readers)]
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    # 64 MiB framed 4 times: at most a few parts and folios per reader stay mapped.
    assert (peak[0] - before) < 24 << 10, f"{(peak[0] - before) >> 10} MiB of 64 mapped at once"
    assert rss_file_kib() - before < 8 << 10


def test_copy_on_write_maps_are_writable_and_never_released(tmp_path: Path) -> None:
    parked = Spool(tmp_path, threshold=1).park(params())
    parent, child = pair(pass_files=True, accept="copy")
    with parent, child:
        parent.send(Envelope("task", {}, FLModel(params=parked)))
        got = child.recv(5).model
        assert got is not None and got.params is not None
        w = got.params["a1"]
        w[:] = 7.0  # the training code may change what it received
        release_pages(w)  # a no-op on a copy-on-write map: the change stays
        assert np.all(w == 7.0)
        assert backing(w) is None
        assert not np.all(parked["a1"] == 7.0)  # the file did not change


def test_file_region_only_for_one_contiguous_read_only_map(tmp_path: Path) -> None:
    parked = Spool(tmp_path, threshold=1).park(params())
    body = list(prepare_envelope(Envelope("k", {}, FLModel(params=parked))).body)
    region = file_region(body)
    assert region is not None
    mapped, offset, length = region
    assert isinstance(mapped, FileMap)
    assert bytes(mapped[offset : offset + 16]) == bytes(body[0][:16])
    assert length == sum(len(part) for part in body)
    reordered = dict(reversed(list(parked.items())))
    assert (
        file_region(list(prepare_envelope(Envelope("k", {}, FLModel(params=reordered))).body))
        is None
    )
    mixed = {**parked, "a1": np.ones(70_000, dtype=np.float32)}
    assert (
        file_region(list(prepare_envelope(Envelope("k", {}, FLModel(params=mixed))).body)) is None
    )


def test_decode_split_matches_decode_envelope() -> None:
    frame = prepare_envelope(Envelope("k", {"x": 1}, FLModel(params=params())))
    body = b"".join(frame.body)
    whole = decode_envelope(frame.head + body)
    split = decode_split(frame.head, body)
    assert split.kind == whole.kind and split.headers == whole.headers
    assert split.model is not None and whole.model is not None
    assert same(split.model.params, whole.model.params or {})
    with pytest.raises(WireError, match="tensor data starts"):
        decode_split(frame.head + b"\0" * 16, body)
    with pytest.raises(WireError):
        decode_split(frame.head, body[:-4])


# -- local channels ----------------------------------------------------------------------
def test_a_spooling_channel_receives_big_messages_into_files(tmp_path: Path) -> None:
    original = params()
    parent, child = pair(spool=Spool(tmp_path, threshold=1000))
    with parent, child:

        def send_both() -> None:
            child.send(Envelope("result", {"n": 1}, FLModel(params=original)))
            child.send(Envelope("log", {"n": 2}))

        sender = Worker(send_both)
        big = parent.recv(5)
        small = parent.recv(5)
        sender.join()
    assert big.headers == {"n": 1} and small.headers == {"n": 2}
    assert big.model is not None and same(big.model.params, original)
    assert all(backing(a) is not None for a in (big.model.params or {}).values())


def test_a_parent_hands_a_file_to_its_child_with_new_headers(tmp_path: Path) -> None:
    original = params()
    parent, child = pair(spool=Spool(tmp_path, threshold=1000), pass_files=True, accept="read")
    with parent, child:
        # The parent received a result into a file and passes it on with headers of its own.
        sender = Worker(
            lambda: child.send(Envelope("result", {"task": "t1"}, FLModel(params=original)))
        )
        received = parent.recv(5)
        sender.join()
        assert received.model is not None
        relayed = Envelope("result", {"task": "t1", "site": "site-1"}, received.model)
        parent.send(relayed)
        got = child.recv(5)
    assert got.headers == {"task": "t1", "site": "site-1"}
    assert got.model is not None and same(got.model.params, original)
    assert all(backing(a) is not None for a in (got.model.params or {}).values())


def test_a_handed_file_cannot_be_changed_by_the_child(tmp_path: Path) -> None:
    parked = Spool(tmp_path, threshold=1).park(params())
    parent, child = pair(pass_files=True, accept="read")
    with parent, child:
        parent.send(Envelope("task", {}, FLModel(params=parked)))
        got = child.recv(5).model
    assert got is not None and got.params is not None
    found = backing(got.params["a1"])
    assert found is not None
    with pytest.raises(OSError):
        os.ftruncate(found[0].file.fileno(), 0)  # read-only descriptor
    assert same(got.params, parked)


def test_file_backed_bodies_go_as_bytes_without_pass_files(tmp_path: Path) -> None:
    parked = Spool(tmp_path, threshold=1).park(params())
    parent, child = pair(pass_files=False)
    with parent, child:
        sender = Worker(lambda: parent.send(Envelope("task", {"h": 1}, FLModel(params=parked))))
        got = child.recv(5)  # the body came by sendfile
        sender.join()
    assert got.model is not None and same(got.model.params, parked)
    assert all(backing(a) is None for a in (got.model.params or {}).values())


def test_a_child_refuses_a_file_it_does_not_accept(tmp_path: Path) -> None:
    parked = Spool(tmp_path, threshold=1).park(params())
    parent, child = pair(pass_files=True, accept=None)
    with parent, child:
        parent.send(Envelope("task", {}, FLModel(params=parked)))
        with pytest.raises(WireError, match="does not take"):
            child.recv(5)
        assert child.closed


def test_a_handed_region_outside_the_file_is_refused(tmp_path: Path) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = LocalChannel(b, accept_files="read")
    path = tmp_path / "f"
    path.write_bytes(b"\0" * 64)
    head = prepare_envelope(Envelope("k", {}, FLModel(params={"w": np.zeros(16, np.float32)}))).head
    inline = struct.pack("<QQ", 0, 1 << 20) + head
    fd = os.open(path, os.O_RDONLY)
    try:
        socket.send_fds(a, [struct.pack("<Q", (1 << 63) | len(inline))], [fd])
        a.sendall(inline)
        with pytest.raises(WireError, match="the body lies at"):
            child.recv(5)
    finally:
        os.close(fd)
        a.close()
        child.close()


def test_a_spool_that_cannot_be_written_ends_the_channel_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    parent, child = pair(spool=Spool(blocker / "spool", threshold=1000))
    with parent, child:
        sender = Worker(lambda: child.send(Envelope("r", {}, FLModel(params=params()))))
        with pytest.raises(ChannelClosed, match="cannot spool"):
            parent.recv(5)
        with pytest.raises(ChannelClosed):
            sender.join()


# -- gRPC streams --------------------------------------------------------------------------
@contextlib.contextmanager
def spooled_link(
    federation: Federation, server_spool: Spool, client_spool: Spool | None = None
) -> Iterator[tuple[Connection, Connection]]:
    """(client, server side) over mTLS gRPC; the server spools into ``server_spool``."""
    accepted: queue.Queue[Connection] = queue.Queue()
    server = TransportServer(
        "127.0.0.1",
        0,
        ca_pem=federation.ca.cert,
        cert_pem=federation.server.cert,
        key_pem=federation.server.key,
        on_connect=accepted.put,
        spool=server_spool,
    )
    port = server.start()
    try:
        client = connect(
            f"127.0.0.1:{port}",
            ca_pem=federation.ca.cert,
            cert_pem=federation.site.cert,
            key_pem=federation.site.key,
            spool=client_spool,
        )
        with client:
            yield client, accepted.get(timeout=10)
    finally:
        server.stop(grace=0.2)


def test_a_grpc_stream_spools_big_messages_both_ways(
    federation: Federation, tmp_path: Path
) -> None:
    with spooled_link(
        federation,
        Spool(tmp_path / "server-spool", threshold=100_000),
        Spool(tmp_path / "client-spool", threshold=100_000),
    ) as (client, server_side):
        big = params(1, sizes=(3 << 20, 5))  # 12 MiB: several frames

        def send_both() -> None:
            client.send(Envelope("result", {"i": 1}, FLModel(params=big)))
            client.send(Envelope("log", {"i": 2}, FLModel(params=params(2, sizes=(4,)))))

        sender = Worker(send_both)
        got = server_side.recv(10)
        small = server_side.recv(10)
        sender.join()
        assert got.model is not None and same(got.model.params, big)
        assert all(backing(a) is not None for a in (got.model.params or {}).values())
        assert small.model is not None and all(
            backing(a) is None for a in (small.model.params or {}).values()
        )
        # Sent on from the file (pages let go as they are framed), received to disk again.
        model = got.model
        sender = Worker(lambda: server_side.send(Envelope("task", {"i": 3}, model)))
        back = client.recv(10)
        sender.join()
        assert back.model is not None and same(back.model.params, big)
        assert all(backing(a) is not None for a in (back.model.params or {}).values())


def test_a_grpc_spool_failure_ends_the_connection_with_the_reason(
    federation: Federation, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with spooled_link(federation, Spool(blocker / "spool", threshold=1000)) as (
        client,
        server_side,
    ):
        Worker(lambda: client.send(Envelope("r", {}, FLModel(params=params()))))
        with pytest.raises(ChannelClosed, match="cannot spool"):
            server_side.recv(10)
        assert server_side.closed


def test_encoded_frames_of_a_spooled_message_equal_the_original(tmp_path: Path) -> None:
    original = params()
    parked = Spool(tmp_path, threshold=1).park(original)
    assert encode_envelope(Envelope("k", {}, FLModel(params=parked))) == encode_envelope(
        Envelope("k", {}, FLModel(params=original))
    )
