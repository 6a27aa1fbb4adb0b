#!/usr/bin/env bash
# The demo: the bundled example app, end to end. Called by `make demo` once the venv,
# the engine and the images are in place.
set -euo pipefail
cd "$(dirname "$0")/.."
STACKCTL=.venv/bin/stackctl
init_flags=()
if [ "${STACKCTL_IMAGES:-local}" = "local" ]; then init_flags+=(--local-images); fi

echo "==> stackctl init (the example Django project in ./example)"
$STACKCTL init "${init_flags[@]}"

echo "==> stackctl up (dev stack: web/daphne, db, redis, nginx)"
$STACKCTL up

url=$($STACKCTL status --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["urls"][1])')
echo "==> a GraphQL query through nginx: $url"
.venv/bin/python - "$url" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
def gql(query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)
created = gql("mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { id title } }",
              {"t": "hello from the demo", "b": "stored in postgres"})
print("mutation:", json.dumps(created))
print("query:   ", json.dumps(gql("{ notes { id title } }")))
PY
echo
echo "The example app is up. GraphQL: $url"
echo "Stop it with: make demo-down   (or .venv/bin/stackctl down)"
