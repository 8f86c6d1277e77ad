"""A server parent with its routing state only (no ports, processes or store), for tests."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from fedra.runtime.intake import Intake
from fedra.runtime.routing import Router
from fedra.runtime.server_parent import ServerParent
from fedra.runtime.server_sites import Requests
from fedra.runtime.uploads import UploadSlots
from fedra.wire import Envelope


def routing_server(sent: list[tuple[str, Envelope]] | None = None) -> ServerParent:
    """A ServerParent without ports; what it sends to sites is appended to ``sent``."""
    sp = ServerParent.__new__(ServerParent)
    sp.kit = SimpleNamespace(  # type: ignore[assignment]
        name="server1", max_connections=66, heartbeat_timeout=60.0
    )
    sp.ssid, sp.hot = None, True
    sp.lock = threading.RLock()
    sp._wake = threading.Condition(sp.lock)
    sp.sites, sp.running, sp.waiting, sp.to_resume = {}, {}, {}, set()
    sp._router = Router()
    sp._routing = threading.Condition(threading.Lock())
    sp._detaching = False
    sp.uploads, sp.requests = UploadSlots(), Requests()
    sp.intake = Intake(sp)
    info: list[Any] = []
    sp.store = SimpleNamespace(  # type: ignore[assignment]
        update_run_info=lambda job_id, data: info.append(data), info=info
    )
    if sent is not None:

        def send(name: str, env: Envelope, shared: object = None, drain: bool = False) -> bool:
            sent.append((name, env))
            return True

        sp.send_to_site = send  # type: ignore[method-assign]
        sp.to_job = lambda job, message, model=None: sent.append(("job", message))  # type: ignore[method-assign,arg-type]
        sp.start_on = lambda job_id, site: None  # type: ignore[method-assign]
    return sp
