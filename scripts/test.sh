#!/usr/bin/env bash
# Runs the whole suite with the services it needs, and stops them afterwards whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGDIR="${PGDIR:-$PWD/.pg}"
export YOLO_CONFIG_DIR="$PWD/.cache/ultralytics" YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
scripts/devdb.sh start
trap 'scripts/devdb.sh stop' EXIT
export ROADWATCH_TEST_DATABASE_URL="$(PGDATABASE=postgres scripts/devdb.sh url)"
.venv/bin/python -m pytest "$@"
