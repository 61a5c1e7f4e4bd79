#!/usr/bin/env bash
# `make run`: PostGIS up, schema migrated, demo credentials, one worker and the API in the foreground.
# Ctrl-C stops the API, the worker and the database.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
scripts/devdb.sh start
export DATABASE_URL="${DATABASE_URL:-$(scripts/devdb.sh url)}"
PY=.venv/bin/python
$PY -m service migrate >/dev/null
# The demo token and first admin password: owner-only, under var/ (never in /tmp).
mkdir -p var && chmod 700 var
CREDENTIALS=var/demo-credentials.json
(umask 077 && $PY -m service demo >"$CREDENTIALS.tmp" && mv "$CREDENTIALS.tmp" "$CREDENTIALS")
$PY -m service worker &
WORKER=$!
DEMO_PID=""
cleanup() { [ -z "$DEMO_PID" ] || kill "$DEMO_PID" 2>/dev/null || true; kill "$WORKER" 2>/dev/null || true; wait "$WORKER" 2>/dev/null || true; scripts/devdb.sh stop; }
trap cleanup EXIT INT TERM
$PY - "$HOST" "$PORT" "$CREDENTIALS" <<'PYEOF'
import json, sys
demo = json.load(open(sys.argv[3]))
host, port = sys.argv[1], sys.argv[2]
print(f"""
Roadwatch is starting at http://{host}:{port}  (API docs: http://{host}:{port}/docs)
  demo vehicle token : {demo['vehicle_token']}
  staff login        : {demo['admin_user']} / {demo.get('admin_password', '(unchanged since the first run)')}
Upload:  curl -H "Authorization: Bearer {demo['vehicle_token']}" -F images=@photo.jpg http://{host}:{port}/api/v1/batches
Sites:   curl -u {demo['admin_user']}:PASSWORD http://{host}:{port}/api/v1/sites
""", flush=True)
PYEOF
# The sample drives (`make demo`, or `make run` while the database holds no data): sent through the
# uploader once the API below answers; `python -m service demo remove` deletes them (service/cli/demo.py).
DEMO="${DEMO:-auto}"
if [ "$DEMO" = auto ] && $PY -m service demo status 2>/dev/null | grep -q '"load_on_start": true'; then
  echo "The database is empty: loading the demo drives (sample photos, marked demo; remove: python -m service demo remove)"
  DEMO=yes
fi
if [ "$DEMO" = yes ]; then
  mkdir -p var
  DEMO_HOST="$HOST"; [ "$HOST" != 0.0.0.0 ] || DEMO_HOST=127.0.0.1
  ( $PY -m service demo load --server "http://$DEMO_HOST:$PORT" --wait 300 --announce >var/demo-load.json \
    || echo "demo load failed (var/demo-load.json)" ) &
  DEMO_PID=$!
fi
$PY -m service serve --host "$HOST" --port "$PORT"
