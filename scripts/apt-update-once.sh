#!/usr/bin/env bash
# `apt-get update` once per machine run: the scripts that install Debian packages (chromium,
# pg_auto_failover) share it, so a fresh machine reads the package lists once. A stamp under
# /tmp records that this boot has updated them.
set -euo pipefail
STAMP="/tmp/.sessionkeeper-apt-updated-$(cut -d' ' -f1 /proc/sys/kernel/random/boot_id 2>/dev/null || echo boot)"
if [ ! -e "$STAMP" ]; then
  ${SUDO:-} apt-get update -qq
  touch "$STAMP"
fi
