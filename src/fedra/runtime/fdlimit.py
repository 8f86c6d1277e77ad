"""Enough file descriptors for a server's connections: the soft limit raised where it is short.

Every site connection holds a socket in the server parent, besides the few dozen descriptors
the process needs anyway (its log, the job store, the admin port, the job processes' sockets
and pipes). Many systems start processes with a soft limit of 1024 open files, which a
federation of a thousand sites exceeds; the hard limit is usually far higher, and a process
may raise its own soft limit up to it. :func:`ensure_open_files` does that at server start,
only when the soft limit is below what the server's ``max_connections`` needs, and says so
in the log, or warns when even the hard limit is too low (the operator must raise it).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable

log = logging.getLogger("fedra.server")

#: Descriptors a server parent needs besides one per site connection.
BASE_OPEN_FILES = 256

Limits = tuple[int, int]


def open_files_needed(connections: int) -> int:
    """Descriptors a server that serves ``connections`` site connections may hold."""
    return connections + BASE_OPEN_FILES


def ensure_open_files(
    needed: int,
    *,
    get: Callable[[], Limits] = lambda: resource.getrlimit(resource.RLIMIT_NOFILE),
    set_: Callable[[Limits], None] = lambda v: resource.setrlimit(resource.RLIMIT_NOFILE, v),
) -> int:
    """Raise this process's soft limit of open files towards ``needed`` (up to the hard limit)
    when it is lower; the soft limit now. ``get``/``set_``: the limits (tests)."""
    soft, hard = get()
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        try:
            set_((target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
            target = soft
        else:
            log.info("raised the open files limit from %d to %d", soft, target)
    if target < needed:
        log.warning(
            "the open files limit is %d (hard limit %s), the server may need %d for its site "
            "connections: raise it (ulimit -n, LimitNOFILE=) or lower max_connections",
            target,
            "unlimited" if hard == resource.RLIM_INFINITY else hard,
            needed,
        )
    return target
