#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh [BUILD_DIR] -- the quick-start demo: start quarryd on its embedded
# storage with the demo collection (2,000 generated articles, 64-d vectors
# from the hashing embedder), use it from the CLI (`quarry --remote`) and from
# the Python client (the RAG example), stop it with SIGTERM, restart it and
# show that everything is still there.
# Environment: DEMO_DB (default demo-db), DEMO_ADDR (default 127.0.0.1:7070).
# The embedded, serverless demo is scripts/demo-local.sh.
set -euo pipefail
BUILD=${1:-build}
Q=$BUILD/clients/cli/quarry
QD=$BUILD/rpc/quarryd
DB=${DEMO_DB:-demo-db}
ADDR=${DEMO_ADDR:-127.0.0.1:7070}
PY=/usr/bin/python3
export PYTHONPATH="$PWD/clients/python:$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
LOG=$(mktemp)
SERVER=

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
stop_server() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER"
        wait "$SERVER" || true
    fi
    SERVER=
}
trap 'stop_server; rm -f "$LOG"' EXIT

start_server() {
    say "$QD --data $DB --demo --listen $ADDR &"
    "$QD" --data "$DB" --demo --listen "$ADDR" 2>>"$LOG" &
    SERVER=$!
    for _ in $(seq 300); do
        if "$Q" --remote "$ADDR" list >/dev/null 2>&1; then
            cat "$LOG"
            return 0
        fi
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.1
    done
    cat "$LOG" >&2
    echo "quarryd did not come up on $ADDR (is the port taken? set DEMO_ADDR)" >&2
    exit 1
}

rm -rf "$DB"
start_server

echo
echo "== the CLI against the server"
run "$Q" --remote "$ADDR" list --long
run "$Q" --remote "$ADDR" get demo doc-8 --format text
say "$Q --remote $ADDR search demo --vector \"\$($PY -m quarry.embed 'jazz piano concert')\" --k 3"
"$Q" --remote "$ADDR" search demo --vector "$($PY -m quarry.embed 'jazz piano concert')" --k 3
say "... the same with --filter '{\"year\": 2019}' --format ids"
"$Q" --remote "$ADDR" search demo --vector "$($PY -m quarry.embed 'jazz piano concert')" --k 3 \
    --filter '{"year": 2019}' --format ids
say "$Q --remote $ADDR search demo --vector '[1, 2]'   # a wrong dimension: a precise error"
"$Q" --remote "$ADDR" search demo --vector '[1, 2]' || true

echo
echo "== the Python client: chunk a document, store it, retrieve context (RAG)"
run $PY clients/python/examples/rag.py --addr "$ADDR" "how warm should the dough be?"
say "$PY -c '... Client(\"$ADDR\").query(\"demo\", vector=hash_embed(\"telescope comet\"), ...)'"
$PY - "$ADDR" <<'PYEOF'
import sys
from quarry import Client, hash_embed
with Client(sys.argv[1]) as db:
    for h in db.query("demo", vector=hash_embed("telescope comet"), k=3,
                      filter={"topic": "astronomy"}):
        print("%-9s %.3f  %s" % (h.id, h.distance, h.text))
PYEOF

echo
echo "== graceful stop (SIGTERM), restart: the data is still there"
stop_server
tail -n 2 "$LOG"
: >"$LOG"
start_server
run "$Q" --remote "$ADDR" list --long
stop_server
echo
echo "The database is in ./$DB. Serve it yourself with:"
echo "  $QD --data $DB --listen $ADDR      (--help lists every flag)"
echo "and try: $Q --remote $ADDR stats demo"
