"""A site's reader trims the heap after a big message only: a thousand sites' small results
each followed by a walk over the whole heap cost more than the results."""

from __future__ import annotations

import numpy as np
import pytest

import fedra.runtime.server_sites as server_sites
from fedra.core import FLModel
from fedra.protocol import Heartbeat, Result, encode
from fedra.runtime.server_records import SiteHandle
from fedra.runtime.server_sites import TRIM_AFTER_BYTES, serve_site
from fedra.transport import ChannelClosed
from fedra.wire import Envelope
from tests.unit.runtime.conftest import routing_server
from tests.unit.runtime.server_fakes import FakeConn


class Incoming(FakeConn):
    """A site connection that delivers ``envelopes``, then ends."""

    def __init__(self, name: str, envelopes: list[Envelope]) -> None:
        super().__init__(name)
        self._incoming = list(envelopes)

    def recv(self, timeout: float | None = None) -> Envelope:
        del timeout
        if not self._incoming:
            raise ChannelClosed("the site left")
        return self._incoming.pop(0)


def _result(nbytes: int) -> Envelope:
    model = FLModel(params={"w": np.zeros(nbytes // 4, dtype=np.float32)})
    return encode(Result(job_id="j1", task_id="t1", task_name="train"), model)


def test_only_a_big_message_is_followed_by_a_heap_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[None] = []
    monkeypatch.setattr(server_sites, "trim_heap", lambda: trims.append(None))
    server = routing_server(sent=[])
    server.wake = lambda: None  # type: ignore[method-assign]
    small = [_result(36) for _ in range(100)]
    conn = Incoming("site-a", [*small, encode(Heartbeat()), _result(TRIM_AFTER_BYTES)])
    serve_site(server, SiteHandle("site-a", "org-a", conn))  # type: ignore[arg-type]
    assert len(trims) == 1  # before: one per result with a model, 101
