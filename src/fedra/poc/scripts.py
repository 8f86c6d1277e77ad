"""The start/stop scripts of a startup kit (POC now, provisioning later)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

START = """#!/usr/bin/env bash
# Start this participant in the background, in a session of its own; logs go to ../log.txt
# (its output too: nothing is printed into this terminal once start.sh has returned).
# While it runs it holds ../daemon.lock: a second start says so, exits 1 and changes nothing.
DIR="$(cd "$(dirname "$0")" && pwd -P)"
KIT="$(dirname "$DIR")"
exec 9>>"$KIT/daemon.lock"
if ! flock -n 9; then
  echo "error: $(basename "$KIT") is already running from $KIT: nothing was started or changed;" \\
    "stop it first with $DIR/stop_fl.sh" >&2
  exit 1
fi
FEDRA_KIT_LOCK_FD=9 setsid "$DIR/sub_start.sh" "$@" < /dev/null >> "$KIT/log.txt" 2>&1 &
echo "started $(basename "$KIT") (log: $KIT/log.txt)"
"""

SUB_START = """#!/usr/bin/env bash
# Run the participant; start it again when it exits with the restart code ({restart}).
# Holds ../daemon.lock (handed down by start.sh on descriptor 9, or taken here) while it runs.
DIR="$(cd "$(dirname "$0")" && pwd -P)"
KIT="$(dirname "$DIR")"
PYTHON="${{FEDRA_PYTHON:-{python}}}"
if [ "${{FEDRA_KIT_LOCK_FD:-}}" != 9 ] || ! {{ true >&9; }} 2>/dev/null; then
  exec 9>>"$KIT/daemon.lock"
fi
if ! flock -n 9; then
  echo "error: $(basename "$KIT") is already running from $KIT: nothing was started" >&2
  exit 1
fi
export FEDRA_KIT_LOCK_FD=9
echo $$ > "$KIT/daemon_pid.fl"
# stop_fl.sh signals the whole group: outlive the participant, then remove daemon_pid.fl.
stopping=""
trap 'stopping=1' TERM INT
while true; do
  "$PYTHON" -m {module} --kit "$KIT"
  code=$?
  if [ -n "$stopping" ] || [ "$code" -ne {restart} ]; then
    rm -f "$KIT/daemon_pid.fl"
    exit "$code"
  fi
  echo "restarting $(basename "$KIT")"
done
"""

STOP = """#!/usr/bin/env bash
# Stop this participant: SIGTERM to its process group (it shuts down cleanly). Signals only
# the process group of this kit's running sub_start.sh; a stale daemon_pid.fl is removed.
KIT="$(cd "$(dirname "$0")/.." && pwd -P)"
PYTHON="${{FEDRA_PYTHON:-{python}}}"
exec "$PYTHON" -m fedra.host.daemon stop --kit "$KIT"
"""

ADMIN = """#!/usr/bin/env bash
# Open the admin console for this kit.
DIR="$(cd "$(dirname "$0")" && pwd)"
PYTHON="${{FEDRA_PYTHON:-{python}}}"
exec "$PYTHON" -m fedra.cli admin --kit "$(dirname "$DIR")" "$@"
"""


def write_script(path: Path, text: str) -> None:
    """Write an executable script."""
    path.write_text(text, encoding="utf-8")
    mode = os.stat(path).st_mode
    os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)  # noqa: S103 - scripts


def write_participant_scripts(startup: Path, module: str, python: str, restart: int) -> None:
    """start.sh, sub_start.sh and stop_fl.sh for a server or a site."""
    write_script(startup / "start.sh", START)
    write_script(
        startup / "sub_start.sh", SUB_START.format(python=python, module=module, restart=restart)
    )
    write_script(startup / "stop_fl.sh", STOP.format(python=python))


def write_admin_script(startup: Path, python: str) -> None:
    """fl_admin.sh."""
    write_script(startup / "fl_admin.sh", ADMIN.format(python=python))
