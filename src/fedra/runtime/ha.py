"""High availability: a server parent's side of the overseer protocol.

A server of a project with an overseer starts *cold*: its ports are open, but it refuses sites
("not in service") and answers admins only with where the hot server is. Its
:class:`HaAgent` heartbeats the overseer every ``heartbeat_interval`` seconds:

- the answer gives this server the lease → it becomes *hot* under the answer's SSID (the job
  store is claimed and fenced with it; every job RUNNING in the store is resumed from its last
  snapshot), and renews the lease with each heartbeat;
- the answer names another server (an admin promoted it, or the overseer found this one
  silent) → it steps down: ends its job processes without touching the store, drops its
  sites, and is cold again;
- the overseer cannot be reached → it keeps serving until its lease runs out, then steps
  down by itself, before the overseer may promote a standby (the overseer waits for the
  lease plus a margin). So two servers never act at once, and the store refuses the writes of
  a stale session anyway. A watchdog thread steps it down the moment the lease runs out,
  also while a heartbeat hangs: on a network that drops packets (not one that refuses them)
  a call lasts the client's whole timeout, which may outlast what is left of the lease.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

from fedra.core import ConfigError
from fedra.overseer import (
    OverseerAnswer,
    OverseerClient,
    OverseerError,
    ServerHeartbeat,
    ServerState,
    client_for_kit,
)
from fedra.pki import TlsFiles

log = logging.getLogger("fedra.ha")


#: Seconds between heartbeats of a standby while the hot server is silent.
FAST_POLL_S = 0.25
#: A participant's own override of how it reaches the overseer (e.g. through a proxy).
LOCAL_OVERSEER_FILE = "overseer.json"


def overseer_client(root: Path, stem: str) -> OverseerClient:
    """The overseer client of a server (``stem`` "server") or site ("client") kit.

    The signed ``startup/fed_*.json`` names the overseer; ``local/overseer.json`` (the
    participant's own, unsigned) may give another ``url`` to reach it by, such as a proxy.
    The overseer's certificate is checked either way.
    """
    path = root / "local" / LOCAL_OVERSEER_FILE
    if not path.is_file():
        return client_for_kit(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str):
        raise ConfigError(f'{path}: expected {{"url": "https://host:port/api/v1"}}')
    log.info("reaching the overseer at %s (from %s)", url, path)
    return OverseerClient(url, TlsFiles.in_dir(root / "startup", stem))


class Switchable(Protocol):
    """What the agent drives: a server parent that can become hot and step down."""

    hot: bool

    def become_hot(self, ssid: int) -> bool:
        """Take over the shared store as session ``ssid``; False if the store refuses."""
        ...

    def step_down(self, reason: str) -> None:
        """Stop acting as the hot server (jobs ended, sites dropped, store untouched)."""
        ...

    def store_ssid(self) -> int:
        """The newest session id the shared store has seen (0: none)."""
        ...


class HaAgent:
    """Heartbeats the overseer for one server and switches it between cold and hot."""

    def __init__(
        self,
        server: Switchable,
        client: OverseerClient,
        *,
        name: str,
        host: str,
        fl_port: int,
        admin_port: int,
        interval: float = 2.0,
    ) -> None:
        self.server = server
        self.client = client
        self.name = name
        self.host = host
        self.fl_port = fl_port
        self.admin_port = admin_port
        self.interval = interval
        #: The latest answer from the overseer (who is hot, the SSID), or None.
        self.answer: OverseerAnswer | None = None
        self._lease_deadline = 0.0
        self._failures = 0
        self._stop = threading.Event()
        #: Set to heartbeat now rather than at the next interval (see :meth:`ask_now`).
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set when the lease changes, so that the watchdog looks at the new deadline.
        self._lease_moved = threading.Event()

    def start(self) -> None:
        """Run the heartbeat loop in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="overseer-agent", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch, name="lease-watchdog", daemon=True).start()

    def stop(self, release: bool = True) -> None:
        """End the loop; with ``release``, tell the overseer this server is stopping."""
        self._stop.set()
        self._wake.set()
        self._lease_moved.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if release:
            try:
                self.client.heartbeat(self._beat(ServerState.STOPPING))
            except OverseerError as exc:
                log.info("could not tell the overseer that this server stops: %s", exc)

    def hot_server(self) -> str | None:
        """The name of the hot server, as last heard from the overseer."""
        answer = self.answer
        return answer.hot.name if answer is not None and answer.hot is not None else None

    def _beat(self, state: ServerState) -> ServerHeartbeat:
        ssid = self.server.store_ssid()
        return ServerHeartbeat(
            self.name, self.host, self.fl_port, self.admin_port, state, ssid=ssid or None
        )

    def ask_now(self, reason: str) -> None:
        """Heartbeat the overseer now instead of at the next interval, and act on its answer
        (e.g. a site claims a newer session). Returns at once; the question is asked in the
        agent's thread, so at most one is in flight, and a wake-up while one is pending is
        the same wake-up."""
        log.info("asking the overseer now: %s", reason)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.step()
            self._wake.wait(self._next_wait())

    def _watch(self) -> None:
        """Step the server down when its lease runs out, whatever the heartbeat loop is
        doing (waiting for an answer that never comes)."""
        while not self._stop.is_set():
            self._lease_moved.clear()
            left = self._lease_deadline - time.monotonic()
            if self.server.hot and left <= 0:
                self.server.step_down("the lease from the overseer ran out")
                left = self.interval
            elif not self.server.hot:
                left = self.interval  # not hot: nothing to watch until a lease comes
            self._lease_moved.wait(max(0.01, left))

    def _next_wait(self) -> float:
        wait = self.interval
        if self.server.hot:  # wake up in time to notice an expiring lease
            wait = min(wait, max(0.05, self._lease_deadline - time.monotonic()))
        elif self._hot_is_gone():  # a promotion is near: be there when it comes
            wait = min(wait, FAST_POLL_S)
        return wait

    def _hot_is_gone(self) -> bool:
        answer = self.answer
        if answer is None or answer.hot is None:
            return True
        hot = answer.hot.name
        return any(s.info.name == hot and not s.live for s in answer.servers)

    def step(self) -> None:
        """One heartbeat and what follows from its answer (also called by tests)."""
        if self.server.hot and time.monotonic() >= self._lease_deadline:
            self.server.step_down("the lease from the overseer ran out")
        state = ServerState.HOT if self.server.hot else ServerState.READY
        try:
            answer = self.client.heartbeat(self._beat(state))
        except OverseerError as exc:
            self._failures += 1
            if self._failures <= 3 or self._failures % 30 == 0:
                log.warning("overseer unreachable (%d): %s", self._failures, exc)
            if self.server.hot and time.monotonic() >= self._lease_deadline:
                self.server.step_down("the overseer is unreachable and the lease ran out")
            return
        if self._failures:
            log.info("overseer reachable again")
        self._failures = 0
        self.answer = answer
        self.interval = answer.heartbeat_interval
        if answer.holds_lease(self.name) and answer.lease is not None and answer.ssid:
            lease = answer.lease
            self._lease_deadline = (
                lease.deadline if lease.deadline is not None else time.monotonic() + lease.seconds
            )
            if not self.server.hot and not self.server.become_hot(answer.ssid):
                self._lease_deadline = 0.0
            self._lease_moved.set()
            return
        if self.server.hot:
            other = answer.hot.name if answer.hot is not None else "no server"
            if answer.hot is not None and answer.hot.name == self.name:
                reason = "the overseer withholds the lease"
            else:
                reason = f"the overseer names {other} hot"
            self.server.step_down(reason)
