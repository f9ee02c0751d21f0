#!/usr/bin/env bash
# API fuzzing: schemathesis against the served OpenAPI documents of the admin API
# (/api/v1/openapi.json, as an admin) and of the OAuth endpoints
# (/oauth/openapi.json, as a confidential client), bounded in time (SECONDS each). Checks: no 5xx, every status documented, every body matching its
# schema, the documented content types (problem+json on errors).
#   interop/api_fuzz.sh PATH/TO/portcullis VENV [SECONDS]
set -euo pipefail
bin="$(realpath "$1")"; venv="$(realpath "$2")"; secs="${3:-60}"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$work/pc.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
issuer = "http://127.0.0.1:$port"
[database]
url = "sqlite://$work/pc.db?mode=rwc"
[keys]
master_key_file = "$work/master.key"
[log]
level = "warn"
# Thousands of deliberately bad requests would (rightly) trip anomaly detection and
# revoke the admin token or block 127.0.0.1, leaving nothing to test.
[anomaly]
enabled = false
TOML
"$bin" --config "$work/pc.toml" migrate >/dev/null 2>&1
token="$("$bin" --config "$work/pc.toml" admin-token create --scope admin 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
client="$("$bin" --config "$work/pc.toml" client create --name fuzz --grant-type client_credentials \
  --scope read --scope write 2>/dev/null \
  | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["client_id"] + ":" + c["client_secret"])')"
basic="$(printf '%s' "$client" | base64 -w0)"
"$bin" --config "$work/pc.toml" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
# From the scratch directory: schemathesis keeps a cache in its working directory.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
fuzz() { # NAME DOCUMENT-PATH AUTHORIZATION
  (cd "$work" && "$venv/bin/st" run "http://127.0.0.1:$port$2" -H "Authorization: $3" \
    --checks "$checks" --max-time "$secs" --workers 1 --seed 1 >"$work/st-$1.log" 2>&1) && ok=1 || ok=0
  echo "$1:"
  grep -E "generated|passed|failed|SUMMARY" "$work/st-$1.log" | tail -4
  if [ "$ok" != 1 ]; then
    cat "$work/st-$1.log"
    exit 1
  fi
}
fuzz admin /api/v1/openapi.json "Bearer $token"
fuzz oauth /oauth/openapi.json "Basic $basic"
if grep -q "panicked" "$work/server.log"; then
  cat "$work/server.log"
  exit 1
fi
