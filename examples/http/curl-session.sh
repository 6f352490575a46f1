#!/usr/bin/env bash
# A session with Accord's HTTP API, using curl only (jq, when installed, just pretty-prints).
#
#   npx accord serve                                   # in another terminal
#   bash examples/http/curl-session.sh                 # or: ACCORD_URL=http://127.0.0.1:5678 bash ...
#
# Environment:
#   ACCORD_URL       server base URL (default http://127.0.0.1:1234; the server prints ws://...,
#                    HTTP is served on the same host and port)
#   ACCORD_WORKFLOW  workflow id to create (default curl-demo-<time>-<pid>, so reruns never collide)
#
# Steps: create a workflow, read it (ETag), patch it with If-Match, get a 412 with a stale
# If-Match, read the history, follow the change stream for a few seconds, read an old version.
# The script stops with a message (exit 1) as soon as an answer is not the expected one.
set -euo pipefail

URL="${ACCORD_URL:-http://127.0.0.1:1234}"
URL="${URL%/}"
WF="${ACCORD_WORKFLOW:-curl-demo-$(date +%s)-$$}"
AGENT="curl-user"

TMP="$(mktemp -d)"
STREAM_PID=""
cleanup() {
  if [ -n "$STREAM_PID" ]; then kill "$STREAM_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Pretty-prints JSON from stdin with jq when it is installed, else passes it through.
pretty() {
  if command -v jq >/dev/null 2>&1; then jq .; else cat; echo; fi
}

step() { printf '\n=== %s\n' "$*"; }

# call METHOD PATH [curl options...]: prints the request, the status and the JSON body.
# Sets STATUS and BODY; response headers are kept in $TMP/headers.
call() {
  local method="$1" path="$2"
  shift 2
  echo "> $method $path"
  STATUS="$(curl -sS -X "$method" -H "X-Accord-Agent: $AGENT" -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' "$@" "$URL$path")"
  BODY="$(cat "$TMP/body")"
  echo "< HTTP $STATUS"
  if [ -n "$BODY" ]; then printf '%s' "$BODY" | pretty; fi
}

expect_status() {
  if [ "$STATUS" != "$1" ]; then
    echo "unexpected HTTP status $STATUS (wanted $1)" >&2
    exit 1
  fi
}

# The value of a response header (from the last call), without the trailing CR.
header() {
  grep -i "^$1:" "$TMP/headers" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

# The first top-level "version" number in the last body (jq-free; our state has no "version" key).
version_of_body() {
  printf '%s' "$BODY" | grep -o '"version":[0-9]*' | head -n 1 | cut -d: -f2
}

# 0. Is the server there? /readyz answers 200 once it serves.
if ! curl -sS -f -o /dev/null "$URL/readyz"; then
  echo "no Accord server at $URL (start one with: npx accord serve)" >&2
  exit 1
fi

# 1. Create a workflow with an initial state: 201 Created, version 1 (409 if the id is taken).
step "create workflow $WF"
call POST /v1/workflows -H 'Content-Type: application/json' \
  --data "{\"workflowId\":\"$WF\",\"state\":{\"status\":\"draft\",\"notes\":[]}}"
expect_status 201

# 2. Read it. The ETag header is the version, quoted: "1".
step "read it"
call GET "/v1/workflows/$WF"
expect_status 200
ETAG="$(header etag)"
echo "ETag: $ETAG"

# 3. Patch it with RFC 6902 ops. If-Match makes the write conditional: it applies only if the
#    workflow is still at that version. The description is URI-encoded in its header, and
#    X-Accord-Agent (sent by call) names the author, as the server runs without auth.
step "patch with If-Match: $ETAG"
call PATCH "/v1/workflows/$WF" \
  -H 'Content-Type: application/json-patch+json' \
  -H "If-Match: $ETAG" \
  -H 'X-Accord-Description: start%20review%20%26%20add%20a%20note' \
  --data '[{"op":"replace","path":"/status","value":"review"},{"op":"add","path":"/notes/-","value":"looks good"}]'
expect_status 200
echo "new ETag: $(header etag)"

# 4. The same If-Match again is stale now: 412 PRECONDITION_FAILED, and nothing is written.
#    (A real agent reads again and retries, or merges without If-Match: writes are CRDT changes.)
step "patch with the stale If-Match: $ETAG (expect 412)"
call PATCH "/v1/workflows/$WF" \
  -H 'Content-Type: application/json-patch+json' \
  -H "If-Match: $ETAG" \
  --data '[{"op":"replace","path":"/status","value":"rejected"}]'
expect_status 412

# 5. History: version records, newest first (author, description, RFC 6902 changes, checksum).
step "history"
call GET "/v1/workflows/$WF/history?limit=5"
expect_status 200

# 6. Follow the change stream (Server-Sent Events) for a few seconds. Without Last-Event-ID the
#    stream starts "now"; with it, the server first replays every change after that version, so
#    nothing made in between is missed. We resume after the current version and make two more
#    changes while curl listens. -N disables buffering; --max-time bounds it (curl then exits 28).
call GET "/v1/workflows/$WF"
CURRENT="$(version_of_body)"
step "follow the change stream for 5 s (Last-Event-ID: $CURRENT)"
curl -sS -N --max-time 5 -H 'Accept: text/event-stream' -H "Last-Event-ID: $CURRENT" \
  "$URL/v1/workflows/$WF/events" > "$TMP/stream" 2>"$TMP/stream.err" &
STREAM_PID=$!
for note in "first live note" "second live note"; do
  call PATCH "/v1/workflows/$WF" \
    -H 'Content-Type: application/json-patch+json' \
    -H "X-Accord-Description: $(printf '%s' "$note" | sed 's/ /%20/g')" \
    --data "[{\"op\":\"add\",\"path\":\"/notes/-\",\"value\":\"$note\"}]"
  expect_status 200
done
STREAM_RC=0
wait "$STREAM_PID" || STREAM_RC=$?
STREAM_PID=""
echo "--- stream (curl exit code $STREAM_RC; 28 means --max-time ended it)"
cat "$TMP/stream"
if [ "$STREAM_RC" != 0 ] && [ "$STREAM_RC" != 28 ]; then
  cat "$TMP/stream.err" >&2
  exit 1
fi
EVENTS="$(grep -c '^event: change' "$TMP/stream" || true)"
echo "--- $EVENTS change events"
if [ "$EVENTS" -lt 2 ]; then
  echo "expected at least 2 change events on the stream" >&2
  exit 1
fi

# 7. An old version: ?version=1 is the state as created, rebuilt from the stored Yjs history.
step "read version 1"
call GET "/v1/workflows/$WF?version=1"
expect_status 200

# And the current one, for comparison.
step "read the current version"
call GET "/v1/workflows/$WF"
expect_status 200

echo
echo "done: workflow $WF"
