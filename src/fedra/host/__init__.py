"""The host side of a long-lived Fedra process: its kit lock and pid (daemon), where its log
goes (logs), and the stderr lines of native libraries turned into log lines (stderr_log).

Kept apart from :mod:`fedra.core`, which holds the domain (models, tasks, job specs and their
statuses) and nothing that touches the operating system's processes.
"""

from fedra.host.daemon import AlreadyRunning, hold_kit_lock, is_running
from fedra.host.logs import log_to_folder

__all__ = ["AlreadyRunning", "hold_kit_lock", "is_running", "log_to_folder"]
