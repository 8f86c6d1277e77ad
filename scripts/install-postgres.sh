#!/usr/bin/env bash
# Install the PostgreSQL server binaries (initdb, pg_ctl, postgres) that the job store tests
# run a throwaway server from. Idempotent: does nothing when they are already installed.
# Debian/Ubuntu only (apt-get). Creates no system cluster: the tests start their own server
# in a temporary folder on a free port.
set -euo pipefail

have_server() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && return 0
    done
    return 1
}

if have_server; then
    echo "PostgreSQL server binaries already installed:" /usr/lib/postgresql/*/bin
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install-postgres.sh: no apt-get here; install the PostgreSQL server (initdb, pg_ctl)" \
        "yourself and set FEDRA_PG_BIN to its bin folder" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-postgres.sh: run as root (or install sudo)" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# postgresql-common first, told not to create (and start) the default "main" cluster.
$SUDO apt-get install -y -q --no-install-recommends postgresql-common
CONF=/etc/postgresql-common/createcluster.conf
if [ -f "$CONF" ]; then
    $SUDO sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$CONF"
fi
$SUDO apt-get install -y -q --no-install-recommends postgresql
have_server || { echo "install-postgres.sh: postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
echo "PostgreSQL server binaries installed:" /usr/lib/postgresql/*/bin
