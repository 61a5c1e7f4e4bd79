#!/usr/bin/env bash
# Project-local Label Studio for development and tests (corrections of the model's detections).
#   scripts/labelstudio.sh install  create .labelstudio/venv with label-studio (once, ~1 GB, ~2 min)
#   scripts/labelstudio.sh start    install if needed, start on a free port of 127.0.0.1, wait until it answers
#   scripts/labelstudio.sh stop     stop the server started by `start` (the data stays)
#   scripts/labelstudio.sh status   exit 0 when it is running and answers
#   scripts/labelstudio.sh url      print http://127.0.0.1:PORT
#   scripts/labelstudio.sh token    print the API token of the local admin (generated once)
#   scripts/labelstudio.sh docroot  print the folder it serves local files from
#   scripts/labelstudio.sh env      print `export ROADWATCH_LABELSTUDIO_...` lines for the service
# Label Studio pins its own dependencies (Django, numpy, ...), so it lives in its own virtual environment;
# the project talks to it only over HTTP (label-studio-sdk). The admin user and its legacy API token are
# created without prompts from LABEL_STUDIO_USERNAME/PASSWORD/USER_TOKEN. Images are served from the local
# folder LABELSTUDIO_DOCUMENT_ROOT (default: the service's image store, $ROADWATCH_DATA_DIR/images or var/images), which
# must contain the service's image store.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LSDIR="${LABELSTUDIO_DIR:-$ROOT/.labelstudio}"
PIN="${LABELSTUDIO_VERSION:-1.23.2}"
VENV="$LSDIR/venv"
USERNAME="${LABELSTUDIO_USERNAME:-roadwatch@localhost}"
START_TIMEOUT="${LABELSTUDIO_START_TIMEOUT:-240}"

install() {
  if [ -x "$VENV/bin/label-studio" ] && [ -f "$VENV/.installed-$PIN" ]; then
    return 0
  fi
  echo "labelstudio: installing label-studio==$PIN into $VENV (about 1 GB, a few minutes)" >&2
  mkdir -p "$LSDIR"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  if ! { "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip &&
    "$VENV/bin/pip" install -q --disable-pip-version-check "label-studio==$PIN"; } >"$LSDIR/install.log" 2>&1; then
    echo "labelstudio: installing failed; the end of $LSDIR/install.log:" >&2
    grep -v "is ignored" "$LSDIR/install.log" | tail -n 20 >&2
    return 1
  fi
  touch "$VENV/.installed-$PIN"
}

secret() {  # a value generated once and kept in $LSDIR/<name> (mode 0600)
  local file="$LSDIR/$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$LSDIR"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(20))' > "$file.tmp" && mv "$file.tmp" "$file")
  fi
  cat "$file"
}

port() { cat "$LSDIR/port"; }
url() { echo "http://127.0.0.1:$(port)"; }

running() {  # our process is alive
  [ -f "$LSDIR/pid" ] && kill -0 "$(cat "$LSDIR/pid")" 2>/dev/null
}

answers() {  # it serves its API with our token (python3 rather than curl: a fresh Debian may lack curl)
  python3 - "$(url)/api/projects?page_size=1" "$(secret token)" <<'PY' 2>/dev/null
import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Token {sys.argv[2]}"})
with urllib.request.urlopen(request, timeout=5) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}

status() { running && answers; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  if running; then
    if answers; then
      echo "labelstudio: already running at $(url)" >&2
      return 0
    fi
    echo "labelstudio: process $(cat "$LSDIR/pid") runs but does not answer with our token; stopping it" >&2
    stop
  fi
  install
  # Only anonymized images: the image store itself (service/labelstudio/client.py refuses more).
  local docroot="${LABELSTUDIO_DOCUMENT_ROOT:-${ROADWATCH_DATA_DIR:-$ROOT/var}/images}"
  mkdir -p "$docroot" "$LSDIR/data"
  docroot="$(cd "$docroot" && pwd)"
  echo "$docroot" > "$LSDIR/document_root"
  free_port > "$LSDIR/port"
  local token password
  token="$(secret token)"
  password="$(secret password)"
  # setsid: its own process group, so `stop` ends Label Studio and nothing else.
  (
    cd "$LSDIR"
    export LABEL_STUDIO_USERNAME="$USERNAME" LABEL_STUDIO_PASSWORD="$password" LABEL_STUDIO_USER_TOKEN="$token" \
      LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
      LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="$docroot" \
      LABEL_STUDIO_BASE_DATA_DIR="$LSDIR/data" DJANGO_DB=sqlite
    exec setsid "$VENV/bin/label-studio" start --no-browser --port "$(cat "$LSDIR/port")" \
      --internal-host 127.0.0.1 --data-dir "$LSDIR/data" >"$LSDIR/server.log" 2>&1 </dev/null
  ) &
  echo $! > "$LSDIR/pid"
  local began=$SECONDS waited=0
  until answers; do
    if ! running; then
      echo "labelstudio: the server exited; the end of $LSDIR/server.log:" >&2
      tail -n 30 "$LSDIR/server.log" >&2
      rm -f "$LSDIR/pid"
      return 1
    fi
    if [ "$waited" -ge "$START_TIMEOUT" ]; then
      echo "labelstudio: no answer after ${START_TIMEOUT}s; the end of $LSDIR/server.log:" >&2
      tail -n 30 "$LSDIR/server.log" >&2
      stop
      return 1
    fi
    sleep 1
    waited=$((SECONDS - began))
  done
  echo "labelstudio: started at $(url) in ${waited}s (user $USERNAME, images from $docroot)" >&2
}

stop() {
  if ! running; then
    rm -f "$LSDIR/pid"
    return 0
  fi
  local pid
  pid="$(cat "$LSDIR/pid")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$LSDIR/pid"
  echo "labelstudio: stopped" >&2
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  token) secret token ;;
  docroot) cat "$LSDIR/document_root" ;;
  env)
    echo "export ROADWATCH_LABELSTUDIO_URL=$(url)"
    echo "export ROADWATCH_LABELSTUDIO_TOKEN=$(secret token)"
    echo "export ROADWATCH_LABELSTUDIO_DOCUMENT_ROOT=$(cat "$LSDIR/document_root")"
    ;;
  *) echo "usage: $0 install|start|stop|status|url|token|docroot|env" >&2; exit 2 ;;
esac
