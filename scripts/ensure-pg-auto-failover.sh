#!/usr/bin/env bash
# The failover test and bench build a pg_auto_failover formation (monitor + primary +
# synchronous secondary) with Debian's packages. Install them when missing; as root via
# apt-get, otherwise via sudo if available. apt-get update runs once, only when installing.
set -euo pipefail
have() {  # the CLI (pg-auto-failover-cli) and the monitor's extension (postgresql-N-auto-failover)
  command -v pg_autoctl >/dev/null 2>&1 \
    && compgen -G "/usr/lib/postgresql/*/lib/pgautofailover.so" >/dev/null 2>&1
}
if have; then
  exit 0
fi
PGVER="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)"
PGVER="${PGVER:-15}"
echo "pg_auto_failover not found: installing postgresql-${PGVER}-auto-failover and pg-auto-failover-cli" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "cannot install pg_auto_failover (not root, no sudo): the failover test will fail" >&2; exit 0
fi
SUDO="$SUDO" bash "$(dirname "$0")/apt-update-once.sh"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
  "postgresql-${PGVER}-auto-failover" pg-auto-failover-cli >/dev/null
