"""What the server parent takes from sites for its running jobs: results and upload
requests, each checked before it reaches a job process.

* **Results** answer a task the server sent to that site and that is still outstanding, and
  fit the task's model (:mod:`fedra.serverapp.resultspec`). A big result is checked from its
  header at the FL port's receive gate, before its body is received; a small one when it has
  arrived. Both checks are the router's (:class:`fedra.runtime.routing.Router`); a refused
  result costs one log line (site, job, task, why), the site is told (``result_refused``) and
  the job gives that task up, so the round goes on with the others.
* **Upload requests** (``may_upload``) wait for their job's results slot
  (:class:`fedra.runtime.uploads.UploadSlots`) in one thread each, and at most one waits per
  (site, job): a repeated request is refused and logged, so a flood cannot start threads.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from fedra.core import FLModel
from fedra.protocol import (
    FROM_SITE,
    BadMessage,
    MayUpload,
    Result,
    UploadOk,
    decode_headers,
    encode,
)
from fedra.runtime.routing import Refused, ResultHead, ResultIn
from fedra.serverapp.resultspec import heads_of
from fedra.transport import MessageRefused
from fedra.wire import ALIGN, FrameHead

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent
    from fedra.runtime.server_records import SiteHandle

log = logging.getLogger("fedra.server")
#: Seconds a site has, once granted an upload, to begin sending that result.
GRANT_START_S = 60.0
GRANT_POLL_S = 0.5


class Intake:
    """The server parent's handling of its sites' results and upload requests."""

    def __init__(self, server: ServerParent) -> None:
        self._server = server
        self._idle = threading.Event()  # never set: a wait that is not a sleep

    # -- results --------------------------------------------------------------------------
    def gate(self, site: str, head: FrameHead, total: int = 0, head_bytes: int = 0) -> None:
        """At the receive gate, a big message's header: MessageRefused for a result that does
        not answer an outstanding task of ``site`` or does not fit the task's model, or whose
        size (``total``, with ``head_bytes`` of head) is more than its header declares. Only
        results may be big: any other message of a site that reaches the gate is refused."""
        if head.kind != Result.KIND:
            big = f"a {head.kind[:32]!r} message of {total} bytes: only results may be this big"
            log.warning("refused a message from site %s: %s", site, big)
            raise MessageRefused(big)
        try:
            result = decode_headers(head.kind, head.headers, FROM_SITE)
        except BadMessage as exc:
            log.warning("refused a result from site %s: malformed headers: %s", site, exc)
            raise MessageRefused(str(exc)) from None
        assert isinstance(result, Result)
        tensors = head.tensors or ()
        declared = head_bytes + sum(t.nbytes for t in tensors) + ALIGN * (len(tensors) + 1)
        oversize = None
        if head_bytes and total > declared:
            oversize = f"it announces {total} bytes, its header declares {declared - ALIGN} at most"
        actions = self._server.feed(ResultHead(site, result, head.tensors, oversize))
        refused = [a for a in actions if isinstance(a, Refused)]
        if result.grant is not None:
            if refused:
                self._server.uploads.end(result.grant)  # its slot is free again
            else:
                self._server.uploads.sending(result.grant)  # not withdrawn for silence
        if refused:
            raise MessageRefused(refused[0].why)

    def result(self, handle: SiteHandle, result: Result, model: FLModel | None) -> None:
        """A result has arrived from ``handle``: checked, then passed to its job (by the
        router's actions); its grant, if any, gives its slot back."""
        try:
            model = model if result.error is None else None
            self._server.feed(ResultIn(handle.name, result, heads_of(model)), model)
        finally:
            if result.grant is not None:
                self._server.uploads.end(result.grant)

    # -- upload requests ------------------------------------------------------------------
    def may_upload(self, handle: SiteHandle, ask: MayUpload) -> None:
        """Start one grant thread, unless this site already waits for (or holds) a grant of
        that job: then the request is refused and logged."""
        router_ok, has_task = self._server.upload_allowed(ask.job_id, handle.name)
        if not router_ok:
            log.warning(
                "refused an upload request of site %s: job %s is not one of its running jobs",
                handle.name,
                ask.job_id[:64],
            )
            return
        if not has_task:
            log.warning(
                "refused an upload request of site %s for job %s: no task of it is outstanding",
                handle.name,
                ask.job_id,
            )
            return
        count = self._server.uploads.request(handle.name, ask.job_id)
        if count:
            if _worth_a_line(count):  # a flood gets a few lines, not one per message
                log.warning(
                    "refused an upload request of site %s for job %s: it already has one "
                    "(%d refused so far)",
                    handle.name,
                    ask.job_id,
                    count,
                )
            return
        threading.Thread(target=self.grant, args=(handle, ask), daemon=True).start()

    def grant(self, handle: SiteHandle, ask: MayUpload) -> None:
        """Tell a site to send its big result once the job's results slot is free; the slot
        is held until that result has been passed on (or the site is gone)."""
        uploads = self._server.uploads
        if not uploads.wait_grant(handle.name, ask.job_id, ask.id, lambda: handle.conn.closed):
            return
        ok = encode(UploadOk(ask.id))
        if handle.conn.closed or not self._server.send_to_site(handle.name, ok):
            uploads.end(ask.id)
            return
        self._withdraw_unused(handle, ask)

    def _withdraw_unused(self, handle: SiteHandle, ask: MayUpload) -> None:
        """Withdraw a grant whose result has not begun within GRANT_START_S: a site that
        holds its job's results slot and sends nothing would stall the others' big results."""
        deadline = time.monotonic() + GRANT_START_S
        uploads = self._server.uploads
        while uploads.live(ask.id):
            if handle.conn.closed:
                return
            if time.monotonic() > deadline:
                log.warning(
                    "site %s sent nothing within %.0f s of its upload grant for job %s: "
                    "grant withdrawn",
                    handle.name,
                    GRANT_START_S,
                    ask.job_id,
                )
                uploads.end(ask.id)
                return
            self._idle.wait(GRANT_POLL_S)


def _worth_a_line(count: int) -> bool:
    """Log the 1st, 10th, 100th ... of a run of refusals."""
    return count == 1 or (count % 10 == 0 and _worth_a_line(count // 10))
