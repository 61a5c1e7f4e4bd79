#!/usr/bin/env bash
# Runs the whole suite with the services it needs, and stops afterwards what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGDIR="${PGDIR:-$PWD/.pg}"
export YOLO_CONFIG_DIR="$PWD/.cache/ultralytics" YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
if scripts/devdb.sh status >/dev/null 2>&1; then
  started=0  # a cluster someone else is using: leave it running
else
  scripts/devdb.sh start
  started=1
fi
trap '[ "$started" = 1 ] && scripts/devdb.sh stop' EXIT
export ROADWATCH_TEST_DATABASE_URL="$(PGDATABASE=postgres scripts/devdb.sh url)"
.venv/bin/python -m pytest "$@"
