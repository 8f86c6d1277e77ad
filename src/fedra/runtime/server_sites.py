"""The server parent's sites: reading each connected site, and requests to sites.

One thread per connected site reads what it sends; each message is decoded with
:func:`fedra.protocol.decode` (the kinds a site may send, :data:`FROM_SITE`) and dispatched
by its type. A malformed or unexpected message costs one log line naming the site and never
ends the reader. :class:`Requests` matches a site's replies with the requests waiting.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from fedra.core import FedraError, trim_heap
from fedra.protocol import (
    FROM_SITE,
    AbortJob,
    BadMessage,
    Heartbeat,
    Hello,
    JobState,
    Log,
    MayUpload,
    Message,
    Reply,
    Request,
    Result,
    Session,
    Welcome,
    decode,
    encode,
)
from fedra.runtime.routing import SiteJoined, SiteLeft, SiteSays
from fedra.runtime.server_records import SiteHandle
from fedra.transport import ChannelClosed

if TYPE_CHECKING:
    from fedra.runtime.server_parent import ServerParent

log = logging.getLogger("fedra.server")
#: Seconds to wait for a site's answer to a request (reserve, free, sys_info ...).
REQUEST_TIMEOUT_S = 15.0
#: A site's message with at least this many bytes of model is followed by a heap trim (its
#: frames, freed in other threads, would stay in the heap). A smaller one is not worth the
#: walk over the whole heap, which, after every 3x3 result of a thousand sites, cost the
#: server parent more CPU than the results themselves.
TRIM_AFTER_BYTES = 1 << 20
#: Heartbeats a second the server asks its sites for at most, all together: each costs the
#: server parent about a millisecond of CPU (a thousand sites at 5 s: a fifth of a core).
HEARTBEATS_PER_S = 50.0


def heartbeat_interval(sites: int, timeout: float) -> float | None:
    """The seconds a server of ``sites`` site connections asks each site to leave between two
    heartbeats: ``sites`` / :data:`HEARTBEATS_PER_S`, but at most a third of the server's
    ``timeout`` (a site silent that long is dropped). A site beats at the longer of this and
    its own interval: a server of up to 250 site connections keeps the sites' own (5 s)."""
    if sites <= 0 or timeout <= 0:
        return None
    return min(sites / HEARTBEATS_PER_S, timeout / 3)


class Requests:
    """Requests to sites waiting for their Reply (``_lock`` guards ``_waiting``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[threading.Event, list[Reply]]] = {}

    def open(self) -> tuple[str, threading.Event, list[Reply]]:
        """A new request id, and the event and box its reply comes in."""
        req_id, event = uuid.uuid4().hex, threading.Event()
        box: list[Reply] = []
        with self._lock:
            self._waiting[req_id] = (event, box)
        return req_id, event, box

    def close(self, req_id: str) -> None:
        """The request is answered or given up."""
        with self._lock:
            self._waiting.pop(req_id, None)

    def answer(self, reply: Reply) -> None:
        """A site's reply: to the request waiting for it (none: dropped)."""
        with self._lock:
            entry = self._waiting.get(reply.id)
        if entry is not None:
            entry[1].append(reply)
            entry[0].set()


def ask(
    server: ServerParent,
    site: str,
    cmd: str,
    args: dict[str, Any],
    timeout: float = REQUEST_TIMEOUT_S,
) -> Any:
    """Send a request to a site and wait for its answer (its data); FedraError when it
    fails."""
    req_id, event, box = server.requests.open()
    try:
        if not server.send_to_site(site, encode(Request(cmd, req_id, args))):
            raise FedraError(f"site {site!r} is not connected")
        if not event.wait(timeout):
            raise FedraError(f"site {site} did not answer {cmd} within {timeout:.0f} s")
    finally:
        server.requests.close(req_id)
    reply = box[0]
    if not reply.ok:
        raise FedraError(f"{reply.error}")
    return reply.data


def serve_site(server: ServerParent, handle: SiteHandle) -> None:
    """Read a site until its connection ends; then it has left."""
    name, conn = handle.name, handle.conn
    log.info("site %s (%s) connected", name, conn.peer.org)
    try:
        kit = server.kit
        beat = heartbeat_interval(kit.max_connections, kit.heartbeat_timeout)
        conn.send(encode(Welcome(kit.name, server.ssid, heartbeat_interval=beat)))
        server.feed(SiteJoined(name))
        while True:
            env = conn.recv()
            handle.last_seen = time.monotonic()
            try:
                from_site(server, handle, decode(env, FROM_SITE), env)
            except (BadMessage, ValueError, TypeError) as exc:
                log.warning(
                    "refused a malformed %r message from site %s: %s", env.kind[:40], name, exc
                )
            big = env.model is not None and env.model.nbytes() >= TRIM_AFTER_BYTES
            del env  # hold no model while waiting for the next message
            if big:
                trim_heap()  # the frames it came in stay in the heap otherwise
    except (ChannelClosed, FedraError, OSError) as exc:
        log.info("site %s disconnected (%s)", name, exc)
    finally:
        conn.close()  # nobody reads it any more (and it gives back its receive slot)
        with server.lock:
            left = server.sites.get(name) is handle
            if left:
                del server.sites[name]
        if left:
            server.feed(SiteLeft(name))
        server.wake()


def from_site(server: ServerParent, handle: SiteHandle, message: Message, env: Any) -> None:
    """Act on one decoded message of a site (``env``: the envelope, for its model)."""
    # A site's word on the session never makes this server step down: it asks the
    # overseer, whose answer decides (HaAgent), at most every few seconds.
    match message:
        case Session(ssid=ssid) if _newer(ssid, server.ssid):
            server.claims.claim(handle.name, ssid, server.ssid, message.KIND)
        case Hello(ssid=ssid) if _newer(ssid, server.ssid):
            server.claims.claim(handle.name, ssid, server.ssid, message.KIND)
            handle.conn.close()  # that site follows another server: this one is not its own
        case Hello() | Heartbeat():
            handle.update_resources(message.resources)
            handle.jobs = list(message.jobs)
            _end_stale_jobs(server, handle)
            if isinstance(message, Hello):
                server.wake()  # its resources are known now: maybe a queued job fits
        case Result():
            server.intake.result(handle, message, env.model)
        case Log() | JobState():
            server.feed(SiteSays(handle.name, message))
        case MayUpload():
            server.intake.may_upload(handle, message)
        case Reply():
            server.requests.answer(message)
        case Session():
            pass  # not newer: nothing to do


def _end_stale_jobs(server: ServerParent, handle: SiteHandle) -> None:
    """Abort jobs a site still runs that the server no longer runs (missed end_job)."""
    if not handle.jobs:
        return  # (most heartbeats: no lock taken)
    with server.lock:
        keep = set(server.running) | server.to_resume
    for job_id in [j for j in handle.jobs if j not in keep]:
        log.info("site %s still runs job %s, which has ended: aborting it", handle.name, job_id)
        server.send_to_site(handle.name, encode(AbortJob(job_id)))


def _newer(theirs: int | None, ours: int | None) -> bool:
    """Whether a peer's session id is newer than this server's."""
    return theirs is not None and ours is not None and theirs > ours
