"""The start/stop scripts of a startup kit (POC now, provisioning later)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

START = """#!/usr/bin/env bash
# Start this participant in the background, in a session of its own; logs go to ../log.txt.
DIR="$(cd "$(dirname "$0")" && pwd)"
setsid "$DIR/sub_start.sh" "$@" < /dev/null &
echo "started $(basename "$(dirname "$DIR")") (log: $(dirname "$DIR")/log.txt)"
"""

SUB_START = """#!/usr/bin/env bash
# Run the participant; start it again when it exits with the restart code ({restart}).
DIR="$(cd "$(dirname "$0")" && pwd)"
KIT="$(dirname "$DIR")"
PYTHON="${{FEDRA_PYTHON:-{python}}}"
echo $$ > "$KIT/daemon_pid.fl"
while true; do
  "$PYTHON" -m {module} --kit "$KIT"
  code=$?
  if [ "$code" -ne {restart} ]; then
    rm -f "$KIT/daemon_pid.fl"
    exit "$code"
  fi
  echo "restarting $(basename "$KIT")"
done
"""

STOP = """#!/usr/bin/env bash
# Stop this participant: SIGTERM to its process group (it shuts down cleanly).
KIT="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$KIT/daemon_pid.fl" ]; then
  echo "$(basename "$KIT") is not running"
  exit 0
fi
kill -TERM -- "-$(cat "$KIT/daemon_pid.fl")" 2>/dev/null
echo "stopping $(basename "$KIT")"
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
    write_script(startup / "stop_fl.sh", STOP)


def write_admin_script(startup: Path, python: str) -> None:
    """fl_admin.sh."""
    write_script(startup / "fl_admin.sh", ADMIN.format(python=python))
