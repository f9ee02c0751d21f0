#!/usr/bin/env bash
# Server CPU per refresh, split by thread: tokio workers, the SQLite writer connection's
# thread, the other SQLite connections' threads. A fresh server and database on
# loopback, one client and one user, then `portcullis-bench-refresh -c 32` for 12 s;
# the threads' CPU (/proc/PID/task/*/stat) is read 4 s and 12 s in, so the password
# grants that start each token chain are not counted.
#   Usage: bench/refresh_cpu.sh [PORTCULLIS_BINARY] [LABEL]
# Build first: cargo build --release --locked -p portcullis -p portcullis-bench-refresh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$root/target/release/portcullis}")"
label="${2:-$(basename "$bin")}"
gen="$root/target/release/portcullis-bench-refresh"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORTCULLIS_SERVER_LISTEN="127.0.0.1:$port" PORTCULLIS_SERVER_ISSUER="http://127.0.0.1:$port"
export PORTCULLIS_DATABASE_URL="sqlite://$work/bench.db?mode=rwc" PORTCULLIS_KEYS_MASTER_KEY_FILE="$work/master.key"
export PORTCULLIS_RATELIMIT_LOGIN_PER_IP=off PORTCULLIS_RATELIMIT_LOGIN_PER_ACCOUNT=off
export PORTCULLIS_RATELIMIT_TOKEN_PER_IP=1000000000/second PORTCULLIS_RATELIMIT_TOKEN_PER_CLIENT=1000000000/second
cd "$work"
"$bin" serve >server.log 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
"$bin" role put --name reader --scope read >/dev/null
echo bench-password-1 | "$bin" user create --username bench --role reader --password-stdin >/dev/null
"$bin" client create --name bench-login --grant-type password --grant-type refresh_token \
  --scope read --scope offline_access --access-token-alg ES256 >client.json
sleep 1.5 # the running server notices the CLI's changes (database.change_poll_interval)
basic="$(python3 -c 'import json; c = json.load(open("client.json")); print(c["client_id"] + ":" + c["client_secret"])')"
snap() { for t in /proc/$server/task/*; do echo "${t##*/} $(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done; }
"$gen" --url "http://127.0.0.1:$port/oauth/token" --basic "$basic" --user bench --password bench-password-1 \
  -c 32 -d 12 -w 2 >run.json &
load=$!
sleep 4; snap >before; sleep 8; snap >after; wait $load
python3 - "$label" <<'PY'
import json, os, sys
hz = os.sysconf("SC_CLK_TCK")
run = json.load(open("run.json"))
before = {l.split()[0]: int(l.split()[2]) for l in open("before")}
spent = [(l.split()[1], (int(l.split()[2]) - before.get(l.split()[0], 0)) / hz) for l in open("after")]
refreshes = run["rps"] * 8  # the 8 s between the two readings
sqlite = sorted((s for name, s in spent if name.startswith("sqlx")), reverse=True)
tokio = sum(s for name, s in spent if name.startswith("tokio"))
us = lambda s: s * 1e6 / refreshes
print(f"{sys.argv[1]}: {run['rps']:.0f} refreshes/s, p99 {run['p99_ms']:.1f} ms, errors {run['errors']}; "
      f"CPU per refresh: tokio {us(tokio):.0f} us, SQLite writer {us(sqlite[0]):.0f} us, "
      f"other SQLite {us(sum(sqlite[1:])):.0f} us, total {us(tokio + sum(sqlite)):.0f} us")
PY
