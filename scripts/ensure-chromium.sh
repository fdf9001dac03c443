#!/usr/bin/env bash
# The browser tests drive Debian's chromium through Playwright (no browser download).
# Install it when missing; as root via apt-get, otherwise via sudo if available.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "chromium not found: installing Debian's chromium package for the browser tests" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "cannot install chromium (not root, no sudo): browser tests will fail" >&2; exit 0
fi
SUDO="$SUDO" bash "$(dirname "$0")/apt-update-once.sh"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
