#!/usr/bin/env bash
# Webhook intake throughput: wrk posts a real GitLab payload (a deploy-token expiry event) to
# `regwarden serve` (SQLite store; every request a new delivery id, so each one is recorded and
# queues a job) and, in the same run, to Debian's `webhook` (adnanh/webhook) with the equivalent
# X-Gitlab-Token rule. Prints requests/s, p50 and p99 latency, idle and peak RSS of both, the
# throughput ratio, the same for regwarden's HMAC-signed path, and the time regwarden takes to
# refuse a hostile request (a flood of signature candidates over a 1 MiB body). DURATION (10s)
# and CONNECTIONS (32) change the run; REGWARDEN_BIN runs that binary instead of building one
# (to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v webhook >/dev/null 2>&1 || missing+=(webhook)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ -z "${REGWARDEN_BIN:-}" ]; then
  cargo build --release --quiet --bin regwarden
  REGWARDEN_BIN=./target/release/regwarden
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1"; exit 1; }
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# A real payload GitLab sends (from GitLab's documentation, tests/fixtures/gitlab-webhooks).
payload="$work/payload.json"
cp tests/fixtures/gitlab-webhooks/resource_deploy_token_project.json "$payload"
secret="bench-webhook-secret"
signing="whsec_$(printf 'regwarden-bench-signing-key-32b!' | base64)"

# wrk scripts: the legacy token with a new Idempotency-Key per request; and, for the signed
# path, signatures computed ahead (Lua has no HMAC), one new webhook-id per request.
cat >"$work/token.lua" <<LUA
local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local body = io.open("$payload"):read("*a")
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Gitlab-Event"] = "Resource Deploy Token Hook",
    ["X-Gitlab-Token"] = "$secret", ["Idempotency-Key"] = string.format("bench-%d-%d", tid, n)}, body)
end
LUA
python3 - "$payload" "$signing" "$work/signatures.txt" <<'PY'
import base64, hmac, hashlib, sys, time
body = open(sys.argv[1], "rb").read()
key = base64.b64decode(sys.argv[2][len("whsec_"):])
ts = str(int(time.time()))
with open(sys.argv[3], "w") as out:
    for i in range(600000):
        mid = "msg_bench_%d" % i
        mac = hmac.new(key, b"%s.%s.%s" % (mid.encode(), ts.encode(), body), hashlib.sha256).digest()
        out.write("%s %s v1,%s\n" % (mid, ts, base64.b64encode(mac).decode()))
PY
cat >"$work/signed.lua" <<LUA
local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local body = io.open("$payload"):read("*a")
local sigs = {}
for line in io.lines("$work/signatures.txt") do
  local id, ts, sig = line:match("(%S+) (%S+) (%S+)")
  sigs[#sigs + 1] = {id, ts, sig}
end
local n = 0
request = function()
  -- Thread k takes entries k, k+2, k+4, ...: no delivery id is sent twice.
  local s = sigs[(n * 2 + tid) % #sigs + 1]
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Gitlab-Event"] = "Resource Deploy Token Hook",
    ["webhook-id"] = s[1], ["webhook-timestamp"] = s[2], ["webhook-signature"] = s[3]}, body)
end
LUA

run_wrk() { wrk -t2 -c"$connections" -d"$duration" --latency -s "$2" "$1" >"$3" 2>&1; }
rps() { awk '/Requests\/sec/ { print $2 }' "$1"; }
pct() { awk -v p="$2" '$1 == p { print $2 }' "$1"; }
non2xx() { awk '/Non-2xx/ { print $5 }' "$1"; }
total() { awk '/requests in/ { print $1 }' "$1"; }

# regwarden
port=$(free_port)
mport=$(free_port)
cat >"$work/regwarden.toml" <<TOML
[gitlab]
url = "http://127.0.0.1:9"
registry_url = "http://127.0.0.1:9"
[qovery]
url = "http://127.0.0.1:9"
organization_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
[store]
url = "sqlite://$work/regwarden.db"
[server]
max_body = "1MiB"
reconcile_interval = "24h"
[[binding]]
name = "api"
project = "acme/api"
qovery_registry = "gitlab-acme-api"
TOML
run_regwarden() {
  rm -rf "$work"/regwarden.db*
  GITLAB_TOKEN=unused QOVERY_API_TOKEN=unused REGWARDEN_WEBHOOK_SECRET="$secret" \
    REGWARDEN_WEBHOOK_SIGNING_TOKEN="$signing" RUST_LOG=error \
    "$REGWARDEN_BIN" serve --config "$work/regwarden.toml" --listen "127.0.0.1:$port" \
      --metrics-listen "127.0.0.1:$mport" &
  rpid=$!; pids+=("$rpid")
  wait_http "http://127.0.0.1:$port/healthz"; sleep 1
}
# Deliveries answered 2xx and recorded: accepted (a job queued) and ignored (none needed).
recorded() {
  curl -s "http://127.0.0.1:$mport/metrics" \
    | awk '/^regwarden_webhook_deliveries_total\{event="deploy_token_expiring",outcome="(accepted|ignored)"\}/ { n += $2 } END { print n + 0 }'
}

run_regwarden
r_idle=$(rss_kib "$rpid" VmRSS)
run_wrk "http://127.0.0.1:$port/webhooks/gitlab" "$work/token.lua" "$work/r_token.txt"
r_peak=$(rss_kib "$rpid" VmHWM); r_recorded=$(recorded)
kill "$rpid"; wait "$rpid" 2>/dev/null || true

run_regwarden
run_wrk "http://127.0.0.1:$port/webhooks/gitlab" "$work/signed.lua" "$work/r_signed.txt"
s_peak=$(rss_kib "$rpid" VmHWM); s_recorded=$(recorded)
kill "$rpid"; wait "$rpid" 2>/dev/null || true

# The same with a token regwarden named: each delivery also queues a job the workers run.
sed -e 's/"name": *"[^"]*"/"name": "regwarden-api-20261124T000000Z"/' "$payload" >"$work/ours.json"
sed -e "s#$payload#$work/ours.json#" "$work/token.lua" >"$work/ours.lua"
run_regwarden
run_wrk "http://127.0.0.1:$port/webhooks/gitlab" "$work/ours.lua" "$work/r_ours.txt"
o_peak=$(rss_kib "$rpid" VmHWM); o_recorded=$(recorded)
kill "$rpid"; wait "$rpid" 2>/dev/null || true

# Hostile requests: a 1 MiB body with a current webhook-timestamp and a webhook-signature of
# as many wrong candidates as fit under the header limit (7,000), or 50,000 (past it): the time
# to refuse each, median of 20, with /healthz asked while two of them are in flight.
run_regwarden
python3 - "$port" "$work/hostile.txt" <<'PY'
import http.client, statistics, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
body = b'{"object_kind":"push","pad":"' + b"x" * ((1 << 20) - 40) + b'"}'
def hostile(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    try:
        c.request("POST", "/webhooks/gitlab", body=body, headers={
            "Content-Type": "application/json", "X-Gitlab-Event": "Push Hook",
            "webhook-id": "msg_hostile", "webhook-timestamp": str(int(time.time())),
            "webhook-signature": " ".join(["v1,AAAA"] * n)})
        status = c.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        # Refused before all of it was sent: 431 while the headers were still being sent,
        # or 401 on the headers alone, before the body (the server does not read it).
        status = 431 if n > 16000 else 401
    finally:
        c.close()
    return status, (time.perf_counter() - start) * 1000
def health():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    c.request("GET", "/healthz"); c.getresponse().read(); c.close()
    return (time.perf_counter() - start) * 1000
with open(out, "w") as f:
    for n in (7000, 50000):
        runs = [hostile(n) for _ in range(20)]
        codes = sorted({s for s, _ in runs})
        f.write("refusing %d candidates + 1 MiB: median %.1f ms (answers %s)\n"
                % (n, statistics.median(t for _, t in runs), codes))
    threads = [threading.Thread(target=hostile, args=(7000,)) for _ in range(2)]
    for t in threads: t.start()
    time.sleep(0.005)
    h = health()
    for t in threads: t.join()
    f.write("/healthz beside two hostile requests: %.1f ms\n" % h)
PY
kill "$rpid"; wait "$rpid" 2>/dev/null || true

# Memory before authentication: 400 clients from 8 loopback addresses (50 each, under the cap
# per address) send a well-formed signature (anyone can) and all but the last byte of a 1 MiB
# body, then stall. The server reads at most server.max_inflight_body (32 MiB) of such bodies
# at once and answers the others 503: its RSS, and /healthz, while they stall.
run_regwarden
python3 - "$port" "$rpid" "$work/stalled.txt" <<'PY'
import socket, sys, time, http.client
port, pid, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
length = (1 << 20) - 1
def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
socks, refused = [], 0
chunk = b"x" * (length - 1)
for i in range(400):
    s = socket.socket()
    s.bind((f"127.0.0.{2 + i % 8}", 0))
    s.connect(("127.0.0.1", port))
    s.sendall((f"POST /webhooks/gitlab HTTP/1.1\r\nHost: r\r\nwebhook-id: stall-{i}\r\n"
               f"webhook-timestamp: {int(time.time())}\r\nwebhook-signature: v1,AAAA\r\n"
               f"Content-Length: {length}\r\n\r\n").encode())
    try:
        s.settimeout(0.05)
        s.sendall(chunk)
        if s.recv(64).startswith(b"HTTP/1.1 503"):
            refused += 1
    except (socket.timeout, BlockingIOError, ConnectionResetError, BrokenPipeError):
        pass
    socks.append(s)
time.sleep(1)
rss = rss_mib()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
start = time.perf_counter()
c.request("GET", "/healthz"); c.getresponse().read(); c.close()
health = (time.perf_counter() - start) * 1000
with open(out, "w") as f:
    f.write("stalled-body flood: 400 connections each holding 1 MiB - 1 byte: %d answered 503 at once; "
            "RSS %.0f MiB (target: under 128 MiB); /healthz %.1f ms\n" % (refused, rss, health))
for s in socks:
    s.close()
PY
kill "$rpid"; wait "$rpid" 2>/dev/null || true

# adnanh/webhook with the same X-Gitlab-Token rule
wport=$(free_port)
cat >"$work/hooks.json" <<JSON
[{"id": "gitlab", "execute-command": "/bin/true",
  "trigger-rule": {"match": {"type": "value", "value": "$secret", "parameter": {"source": "header", "name": "X-Gitlab-Token"}}}}]
JSON
webhook -hooks "$work/hooks.json" -ip 127.0.0.1 -port "$wport" >"$work/webhook.log" 2>&1 &
wpid=$!; pids+=("$wpid")
sleep 1; w_idle=$(rss_kib "$wpid" VmRSS)
run_wrk "http://127.0.0.1:$wport/hooks/gitlab" "$work/token.lua" "$work/w_token.txt"
w_peak=$(rss_kib "$wpid" VmHWM)

row() { printf '%-34s %10s %9s %9s %9s %10s %10s\n' "$@"; }
row "" "req/s" "p50" "p99" "non-2xx" "idle RSS" "peak RSS"
row "regwarden (X-Gitlab-Token)" "$(rps "$work/r_token.txt")" "$(pct "$work/r_token.txt" 50%)" "$(pct "$work/r_token.txt" 99%)" "$(non2xx "$work/r_token.txt")" "$((r_idle / 1024)) MiB" "$((r_peak / 1024)) MiB"
row "regwarden (HMAC signature)" "$(rps "$work/r_signed.txt")" "$(pct "$work/r_signed.txt" 50%)" "$(pct "$work/r_signed.txt" 99%)" "$(non2xx "$work/r_signed.txt")" "" "$((s_peak / 1024)) MiB"
row "regwarden (token, queues a job)" "$(rps "$work/r_ours.txt")" "$(pct "$work/r_ours.txt" 50%)" "$(pct "$work/r_ours.txt" 99%)" "$(non2xx "$work/r_ours.txt")" "" "$((o_peak / 1024)) MiB"
row "adnanh/webhook (X-Gitlab-Token)" "$(rps "$work/w_token.txt")" "$(pct "$work/w_token.txt" 50%)" "$(pct "$work/w_token.txt" 99%)" "$(non2xx "$work/w_token.txt")" "$((w_idle / 1024)) MiB" "$((w_peak / 1024)) MiB"
echo "deliveries recorded by regwarden: $r_recorded of $(total "$work/r_token.txt") requests (token), $s_recorded of $(total "$work/r_signed.txt") (signed), $o_recorded of $(total "$work/r_ours.txt") (queuing jobs)"
awk -v r="$(rps "$work/r_token.txt")" -v w="$(rps "$work/w_token.txt")" 'BEGIN { printf "throughput ratio regwarden/webhook: %.2f (target: at least 4)\n", r / w }'
cat "$work/hostile.txt" "$work/stalled.txt"
echo "targets: p99 <= 5 ms at $connections connections; RSS <= 15 MiB idle, <= 50 MiB under load"
