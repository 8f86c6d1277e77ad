"""The overseer as a process (``fedra overseer start``): verify the kit, serve until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from fedra.host.logs import log_to_folder
from fedra.overseer.kit import OverseerKit
from fedra.overseer.service import OverseerService
from fedra.overseer.statefile import JsonStateFile
from fedra.pki import verify_kit

log = logging.getLogger(__name__)


def serve_kit(root: Path, stop: threading.Event | None = None) -> int:
    """Run the overseer of the kit at ``root`` until ``stop`` is set (or SIGTERM/SIGINT when
    ``stop`` is not given); return the exit code (0).

    Refuses a kit whose signed files changed (:class:`fedra.pki.KitTampered`) and a state
    file it cannot read (:class:`fedra.overseer.StateFileError`). As a process (no ``stop``):
    refuses to start while another holds the kit's lock (:mod:`fedra.host.daemon`), and
    logs to ``log.txt`` in the kit and to stdout, its standard error included.
    """
    root = Path(root).resolve()
    verify_kit(root)
    kit = OverseerKit.load(root)
    if stop is None:
        from fedra.host.daemon import hold_kit_lock
        from fedra.host.stderr_log import capture_stderr

        hold_kit_lock(root)  # one running copy per kit (AlreadyRunning otherwise)
        stop = threading.Event()
        log_to_folder(root)
        capture_stderr()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    service = OverseerService(
        kit.tls,
        host=kit.host,
        port=kit.port,
        api_root=kit.api_root,
        settings=kit.settings,
        store=JsonStateFile(kit.state_file),
        servers=kit.servers,
        revoked=kit.revoked,
        admins=kit.admins,
    )
    election = service.election
    log.info(
        "overseer %s: hot server %s, ssid %s (%s)",
        kit.name,
        election.hot or "none yet",
        "none yet" if election.ssid is None else election.ssid,
        "restored from " + str(kit.state_file) if election.ssid is not None else "fresh state",
    )
    service.start()
    try:
        stop.wait()
    finally:
        log.info("overseer %s stopping", kit.name)
        service.stop()
    return 0
