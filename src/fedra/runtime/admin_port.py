"""Limits of the server's admin port, applied before anything an admin sends is trusted.

Any certificate of the project's CA reaches the admin port, ``member`` included, so the port
bounds what one certificate can cost the server before a command is even read:

* **Message size.** A command is at most :data:`ADMIN_MAX_MESSAGE` bytes. The one exception
  is a job upload (``submit_job``): it may carry the server's ``max_job_bytes`` (a setting
  of ``fed_server.json``) plus :data:`UPLOAD_HEADROOM`, and only from a role that may submit
  jobs at all. Both are judged from the size and header the first frame of a message
  declares, before anything more of it is read; a refusal ends the connection with a
  one-line reason and leaves one line in the server's log. Uploads that pass go to a file
  (the admin port's spool), not to memory, while they arrive.
* **Connections.** One certificate identity holds at most :data:`CONNECTIONS_PER_ADMIN`
  connections, so one admin cannot take the port's threads from the others; a connection
  with no request for :data:`ADMIN_IDLE_TIMEOUT_S` seconds (and none being answered) is
  closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from fedra.protocol import AdminRequest
from fedra.transport import Connection, MessageRefused, PeerIdentity, Spool
from fedra.wire import Envelope, peek_head

log = logging.getLogger("fedra.admin")

#: The largest admin message other than a job upload: a command and its arguments.
ADMIN_MAX_MESSAGE = 1 << 20
#: Bytes a job upload may carry on top of the zip itself (its header: command, signature and
#: certificate; the zip's array description).
UPLOAD_HEADROOM = 1 << 20
#: Open admin connections one certificate identity may hold at once.
CONNECTIONS_PER_ADMIN = 8
#: Seconds an admin connection may stay silent, with no request being answered, before the
#: server closes it (the console and Session connect again when they need to).
ADMIN_IDLE_TIMEOUT_S = 900.0
#: Seconds between two looks for idle admin connections.
IDLE_CHECK_S = 5.0
#: The admin command that uploads a job.
UPLOAD_COMMAND: Final = "submit_job"


def may_submit(kit_root: Path, peer: PeerIdentity) -> bool:
    """Whether the server's policy lets ``peer``'s role submit jobs at all."""
    from fedra.runtime.admin_rights import Access, load_server_policy

    policy, source = load_server_policy(kit_root)
    return Access(peer, policy, source).may(UPLOAD_COMMAND)


def who(peer: PeerIdentity) -> str:
    """An admin as the log names it: ``name (role, org)``."""
    return f"{peer.name} ({peer.role}, {peer.org})"


def judge_message(
    peer: PeerIdentity,
    total: int,
    head: bytes,
    *,
    max_job_bytes: int,
    may_upload: Callable[[PeerIdentity], bool],
    max_message: int = ADMIN_MAX_MESSAGE,
) -> str | None:
    """Why an admin message of ``total`` bytes starting with ``head`` is refused, or None.

    Only the declared size and the header in the first frame are looked at: a message whose
    header is not in its first frame counts as a command (at most ``max_message`` bytes).
    """
    if total <= max_message:
        return None
    found = peek_head(head)
    cmd = None
    if found is not None and found[0] == AdminRequest.KIND:
        cmd = found[1].get("cmd")
    if cmd != UPLOAD_COMMAND:
        return (
            f"refused: an admin message of {total} bytes is above the limit of {max_message} "
            "(only a job upload may be bigger)"
        )
    if not may_upload(peer):
        return f"refused: {peer.role} {peer.name} may not submit jobs (upload of {total} bytes)"
    if total > max_job_bytes + UPLOAD_HEADROOM:
        return (
            f"refused: the job upload is {total} bytes, above the server's limit of "
            f"{max_job_bytes} bytes for a job (max_job_bytes in fed_server.json)"
        )
    return None


class _Tracked(Connection):
    """An admin connection that knows whether a request is being answered and since when it
    is idle (what the idle timeout measures)."""

    def __init__(self, conn: Connection) -> None:
        self.inner = conn
        self.busy = False
        self.since = time.monotonic()

    @property
    def peer(self) -> PeerIdentity:
        """The admin's identity, from its certificate."""
        return self.inner.peer

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self.inner.closed

    def idle_for(self, now: float) -> float:
        """Seconds without a request or a frame of one, and with no request being answered."""
        if self.busy:
            return 0.0
        return now - max(self.since, self.inner.last_heard)

    def send(self, envelope: Envelope) -> None:
        """Send (a reply)."""
        self.inner.send(envelope)

    def recv(self, timeout: float | None = None) -> Envelope:
        """The next request; the connection counts as busy until the next ``recv``."""
        self.busy = False
        self.since = time.monotonic()
        env = self.inner.recv(timeout)
        self.busy = True
        return env

    def close(self) -> None:
        """Close the connection."""
        self.inner.close()


class AdminPort:
    """The admin port's connection limits; :meth:`connected` is the transport's ``on_connect``.

    ``serve`` answers one admin connection until it ends (it runs in a thread of its own).
    """

    def __init__(
        self,
        kit_root: Path,
        serve: Callable[[Connection], None],
        *,
        max_job_bytes: int,
        per_admin: int = CONNECTIONS_PER_ADMIN,
        idle_timeout_s: float = ADMIN_IDLE_TIMEOUT_S,
        check_every_s: float = IDLE_CHECK_S,
    ) -> None:
        self._kit_root = kit_root
        self._serve = serve
        self.max_job_bytes = max_job_bytes
        self.per_admin = per_admin
        self.idle_timeout_s = idle_timeout_s
        self._check_every_s = check_every_s
        #: Job uploads go to files here while they arrive (commands stay in memory).
        self.spool = Spool(kit_root / "spool", threshold=ADMIN_MAX_MESSAGE + 1)
        self._lock = threading.Lock()
        self._open: dict[PeerIdentity, list[_Tracked]] = {}
        self._watcher: threading.Thread | None = None

    def connected(self, conn: Connection) -> None:
        """Admit a new admin connection, or refuse it (FedraError) when its identity holds
        :attr:`per_admin` connections already."""
        from fedra.core import FedraError

        peer = conn.peer
        tracked = _Tracked(conn)
        with self._lock:
            held = self._open.setdefault(peer, [])
            if len(held) >= self.per_admin:
                if not held:
                    del self._open[peer]
                log.warning(
                    "refused an admin connection of %s: it holds %d already (the limit)",
                    who(peer),
                    len(held),
                )
                raise FedraError(
                    f"refused: {peer.name} holds {len(held)} admin connections already, the "
                    f"limit per admin; close one first"
                )
            held.append(tracked)
            self._start_watcher()
        conn.set_gate(lambda total, head: self._judge(peer, total, head))
        threading.Thread(
            target=self._run, args=(tracked,), name=f"admin-{peer.name}", daemon=True
        ).start()

    def _judge(self, peer: PeerIdentity, total: int, head: bytes) -> None:
        """The connection's gate: a message :func:`judge_message` refuses ends the connection
        (MessageRefused with ``ends_connection``); the others go on at once (no slot)."""
        try:
            refused = judge_message(
                peer,
                total,
                head,
                max_job_bytes=self.max_job_bytes,
                may_upload=lambda sender: may_submit(self._kit_root, sender),
            )
        except Exception as exc:  # e.g. an unreadable policy: refuse, never trust
            log.exception("admin %s: cannot judge a message of %d bytes", who(peer), total)
            refused = f"refused: the server cannot judge this message ({exc})"
        if refused is not None:
            log.warning("admin %s: %s; connection closed", who(peer), refused)
            raise MessageRefused(refused, ends_connection=True)

    def _run(self, tracked: _Tracked) -> None:
        try:
            self._serve(tracked)
        finally:
            tracked.close()
            with self._lock:
                held = self._open.get(tracked.peer, [])
                if tracked in held:
                    held.remove(tracked)
                if not held:
                    self._open.pop(tracked.peer, None)

    def _start_watcher(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="admin-idle", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        while True:
            time.sleep(self._check_every_s)  # a periodic sweep, not a wait for a condition
            self.close_idle(time.monotonic())

    def close_idle(self, now: float) -> int:
        """Close every admin connection idle for longer than the timeout; how many."""
        with self._lock:
            idle = [
                (t, t.idle_for(now))
                for held in self._open.values()
                for t in held
                if t.idle_for(now) > self.idle_timeout_s
            ]
        for tracked, seconds in idle:
            log.warning(
                "closed the admin connection of %s: idle for %.0f s (the limit is %.0f s)",
                who(tracked.peer),
                seconds,
                self.idle_timeout_s,
            )
            tracked.close()
        return len(idle)

    def open_count(self, peer: PeerIdentity) -> int:
        """Admin connections ``peer`` holds now."""
        with self._lock:
            return len(self._open.get(peer, []))
