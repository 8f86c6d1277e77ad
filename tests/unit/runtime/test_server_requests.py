"""Requests of the server parent to its sites (:class:`Requests`, :func:`ask`): a reply reaches
the request waiting under its id, and only that one; no answer, a refusal, a site not
connected and a malformed reply each end in a FedraError or a log line, never a hang."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedra.core import FedraError
from fedra.protocol import Heartbeat, Reply, Request, encode
from fedra.runtime.server_parent import ServerParent
from fedra.runtime.server_records import SiteHandle
from fedra.runtime.server_sites import Requests, from_site, serve_site
from fedra.transport import ChannelClosed
from fedra.wire import Envelope
from tests.unit.runtime.server_fakes import FakeConn, conn, shell


@pytest.fixture
def sp(tmp_path: Path) -> ServerParent:
    return shell(tmp_path, ("site-a",))


def answering(sp: ServerParent, reply: object) -> None:
    """site-a answers each request at once with ``reply(request)``."""

    def on_send(env: Envelope) -> None:
        request = Request(**env.headers)
        sp.requests.answer(reply(request))  # type: ignore[operator]

    conn(sp, "site-a").on_send = on_send


def test_a_reply_under_the_requests_id_is_its_answer(sp: ServerParent) -> None:
    answering(sp, lambda r: Reply(r.id, True, {"free": {"num_cpus": 2}}))
    data = sp.ask("site-a", "reserve", {"job_id": "j1", "spec": {}, "ttl": 60.0})
    assert data == {"free": {"num_cpus": 2}}
    [request] = conn(sp, "site-a").messages()
    assert isinstance(request, Request) and request.cmd == "reserve"
    assert request.args == {"job_id": "j1", "spec": {}, "ttl": 60.0} and request.id
    assert sp.requests._waiting == {}  # answered: forgotten


def test_each_request_has_an_id_of_its_own(sp: ServerParent) -> None:
    answering(sp, lambda r: Reply(r.id, True, r.id))
    first, second = sp.ask("site-a", "sys_info", {}), sp.ask("site-a", "sys_info", {})
    assert first != second


def test_a_refusal_is_a_fedra_error_with_the_sites_words(sp: ServerParent) -> None:
    answering(sp, lambda r: Reply(r.id, False, error="reserve: not enough GPUs"))
    with pytest.raises(FedraError, match=r"^reserve: not enough GPUs$"):
        sp.ask("site-a", "reserve", {})
    assert sp.requests._waiting == {}


def test_no_answer_within_the_timeout_is_a_fedra_error(sp: ServerParent) -> None:
    with pytest.raises(FedraError, match="site site-a did not answer tail within 0 s"):
        sp.ask("site-a", "tail", {}, timeout=0.0)
    assert sp.requests._waiting == {}  # given up: a late reply finds nothing


def test_a_reply_under_another_id_answers_nothing(sp: ServerParent) -> None:
    answering(sp, lambda r: Reply("not-" + r.id, True, "forged"))
    with pytest.raises(FedraError, match="did not answer"):
        sp.ask("site-a", "sys_info", {}, timeout=0.0)


def test_a_site_that_is_not_connected_is_not_waited_for(sp: ServerParent) -> None:
    with pytest.raises(FedraError, match="site 'site-z' is not connected"):
        sp.ask("site-z", "sys_info", {})
    conn(sp, "site-a").fail = True
    with pytest.raises(FedraError, match="site 'site-a' is not connected"):
        sp.ask("site-a", "sys_info", {})
    assert sp.requests._waiting == {}


def test_a_late_or_unknown_reply_is_dropped() -> None:
    requests = Requests()
    requests.answer(Reply("nobody-asked", True))
    req_id, event, box = requests.open()
    requests.close(req_id)
    requests.answer(Reply(req_id, True, "late"))
    assert not event.is_set() and box == []


def test_only_the_first_reply_counts() -> None:
    requests = Requests()
    req_id, event, box = requests.open()
    requests.answer(Reply(req_id, True, "first"))
    requests.answer(Reply(req_id, False, error="second"))
    assert event.is_set() and box[0] == Reply(req_id, True, "first")


class Script(FakeConn):
    """A site that sends the given envelopes, then is gone."""

    def __init__(self, name: str, envelopes: list[Envelope]) -> None:
        super().__init__(name)
        self._envelopes = list(envelopes)

    def recv(self, timeout: float | None = None) -> Envelope:
        if not self._envelopes:
            raise ChannelClosed("no more")
        return self._envelopes.pop(0)


def test_a_malformed_reply_is_refused_and_the_request_still_waits(
    sp: ServerParent, caplog: pytest.LogCaptureFixture
) -> None:
    req_id, event, box = sp.requests.open()
    script = Script(
        "site-b",
        [
            Envelope(Reply.KIND, {"id": req_id, "ok": "yes"}),
            Envelope(Reply.KIND, {"id": req_id}),
            Envelope(Reply.KIND, {"id": req_id, "ok": True, "hint": 5}),
        ],
    )
    handle = SiteHandle("site-b", "org-b", script)  # type: ignore[arg-type]
    sp.sites["site-b"] = handle
    caplog.set_level(logging.WARNING, "fedra.server")
    serve_site(sp, handle)
    assert not event.is_set() and box == []
    assert caplog.text.count("refused a malformed 'reply' message from site site-b") == 3
    sp.requests.close(req_id)


def test_a_reply_read_from_a_site_answers_its_request(sp: ServerParent) -> None:
    req_id, event, box = sp.requests.open()
    handle = sp.sites["site-a"]
    env = encode(Reply(req_id, True, {"text": "log"}))
    from_site(sp, handle, Reply(req_id, True, {"text": "log"}), env)
    assert event.is_set() and box == [Reply(req_id, True, {"text": "log"})]
    sp.requests.close(req_id)


def test_a_heartbeat_updates_the_sites_resources_and_jobs(sp: ServerParent) -> None:
    handle = sp.sites["site-a"]
    beat = Heartbeat(("j1",), {"total": {"num_cpus": 4}, "free": {"num_cpus": 1}})
    from_site(sp, handle, beat, encode(beat))
    assert handle.jobs == ["j1"]
    assert handle.free is not None and handle.free.num_cpus == 1
    # j1 is not running here: the site is told to end it.
    assert [m.KIND for m in conn(sp, "site-a").messages()] == ["abort_job"]
