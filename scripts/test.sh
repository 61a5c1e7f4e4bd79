#!/usr/bin/env bash
# Runs the whole suite with the services it needs, and stops afterwards what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGDIR="${PGDIR:-$PWD/.pg}"
export YOLO_CONFIG_DIR="$PWD/.cache/ultralytics" YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
db_started=0 ls_started=0
cleanup() {
  if [ "$ls_started" = 1 ]; then scripts/labelstudio.sh stop || true; fi
  if [ "$db_started" = 1 ]; then scripts/devdb.sh stop || true; fi
}
trap cleanup EXIT
if scripts/devdb.sh status >/dev/null 2>&1; then
  db_started=0  # a cluster someone else is using: leave it running
else
  scripts/devdb.sh start
  db_started=1
fi
export ROADWATCH_TEST_DATABASE_URL="$(PGDATABASE=postgres scripts/devdb.sh url)"
# Label Studio (its own venv in .labelstudio/, installed on first use): one already running is reused.
if scripts/labelstudio.sh status >/dev/null 2>&1; then
  ls_started=0
else
  ls_started=1
  scripts/labelstudio.sh start
fi
export ROADWATCH_TEST_LABELSTUDIO_URL="$(scripts/labelstudio.sh url)"
export ROADWATCH_TEST_LABELSTUDIO_TOKEN="$(scripts/labelstudio.sh token)"
export ROADWATCH_TEST_LABELSTUDIO_DOCUMENT_ROOT="$(scripts/labelstudio.sh docroot)"
.venv/bin/python -m pytest "$@"
