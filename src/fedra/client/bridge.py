"""The link between the Client API functions and the site runtime.

A training script calls ``fedra.client.receive()`` / ``send()``; those go to a Bridge. In
process, the bridge is a pair of queues shared with the ScriptExecutor (one bridge per site,
found through a thread-local). In a separate process, the bridge is a LocalChannel to the
executor, found through the ``FEDRA_CLIENT_SOCKET`` environment variable.
"""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass
from typing import Protocol

from fedra.core import FLModel
from fedra.protocol import (
    MAX_DETAIL,
    TO_SCRIPT,
    BadMessage,
    ScriptError,
    ScriptHello,
    ScriptLog,
    ScriptResult,
    ScriptTask,
    decode_script,
    encode_script,
)

SOCKET_ENV = "FEDRA_CLIENT_SOCKET"

#: What a QueueBridge's outbox holds for the executor: a result or a failure of the script
#: (a script in its own process speaks :mod:`fedra.protocol.script` instead).
RESULT, ERROR = "result", "error"


@dataclass(frozen=True)
class SiteInfo:
    """Who the script runs as."""

    site_name: str
    site_index: int
    num_sites: int
    job_id: str
    params_format: str = "numpy"


class Bridge(Protocol):
    """What the Client API needs from the site runtime."""

    info: SiteInfo

    def next_task(self) -> tuple[str, FLModel] | None:
        """Block until the next task (name, data), or None when the job is over."""
        ...

    def send_result(self, model: FLModel) -> None:
        """Return the result of the current task."""
        ...

    def send_log(self, key: str, value: float, step: int | None) -> None:
        """Stream a metric to the server."""
        ...

    def send_error(self, detail: str) -> None:
        """Report that the script failed (traceback text)."""
        ...


Outcome = tuple[str, FLModel | None, str]
"""(kind, model, detail) put on a QueueBridge's outbox: kind is result, error, ended, stopped."""


class QueueBridge:
    """In-process bridge: the executor puts tasks in ``inbox`` and reads ``outbox``."""

    def __init__(self, info: SiteInfo, log_sink: LogFn) -> None:
        self.info = info
        self.inbox: queue.SimpleQueue[tuple[str, FLModel] | None] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._log = log_sink

    def next_task(self) -> tuple[str, FLModel] | None:
        """Block until the executor hands over a task."""
        return self.inbox.get()

    def send_result(self, model: FLModel) -> None:
        """Hand the result to the executor."""
        self.outbox.put((RESULT, model, ""))

    def send_log(self, key: str, value: float, step: int | None) -> None:
        """Pass a metric to the site's log sink."""
        self._log(key, value, step)

    def send_error(self, detail: str) -> None:
        """Report a failure of the script."""
        self.outbox.put((ERROR, None, detail))


class LogFn(Protocol):
    """``(key, value, step)``."""

    def __call__(self, key: str, value: float, step: int | None) -> None:
        """Record one metric."""
        ...


class ChannelBridge:
    """Bridge of a script running as its own process, over a LocalChannel."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        from fedra.transport import connect_unix

        self._channel = connect_unix(path, timeout=timeout)
        try:
            hello = decode_script(self._channel.recv(), TO_SCRIPT)
        except BadMessage as exc:
            raise ConnectionError(f"expected a greeting from the site: {exc}") from None
        if not isinstance(hello, ScriptHello):
            raise ConnectionError(f"expected a greeting from the site, got {hello.KIND!r}")
        self.info = SiteInfo(
            site_name=hello.site_name,
            site_index=hello.site_index,
            num_sites=hello.num_sites,
            job_id=hello.job_id,
            params_format=hello.params_format,
        )

    def next_task(self) -> tuple[str, FLModel] | None:
        """Wait for the next task from the executor."""
        from fedra.transport import ChannelClosed

        try:
            envelope = self._channel.recv()
        except ChannelClosed:
            return None
        try:
            message = decode_script(envelope, TO_SCRIPT)
        except BadMessage as exc:
            raise ConnectionError(f"a malformed message from the site: {exc}") from None
        if not isinstance(message, ScriptTask):
            return None  # ScriptStop (a second greeting is no task either)
        return message.name, envelope.model or FLModel()

    def send_result(self, model: FLModel) -> None:
        """Send the result to the executor."""
        self._channel.send(encode_script(ScriptResult(), model))

    def send_log(self, key: str, value: float, step: int | None) -> None:
        """Send a metric to the executor."""
        self._channel.send(encode_script(ScriptLog(key=key, value=value, step=step)))

    def send_error(self, detail: str) -> None:
        """Send the script's traceback before it exits."""
        self._channel.send(encode_script(ScriptError(detail=detail[-MAX_DETAIL:])))


def socket_from_env() -> str | None:
    """The executor's socket path when this process was started by a ScriptExecutor."""
    return os.environ.get(SOCKET_ENV)
