#!/usr/bin/env bash
# Times `regwarden check` against `skopeo list-tags`, which performs the same Docker Registry v2
# token dance, on the same local registry (distribution 2.8 over TLS with a private CA) and the
# same realm. Runs are interleaved, alternating which tool goes first, and both tools must
# succeed on every run. Prints both medians and the ratio. RUNS (default 21) sets the count.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-21}

missing=()
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo build --release --quiet --bin regwarden --example bench_env
work=$(mktemp -d)
./target/release/examples/bench_env "$work" >"$work/env" 2>"$work/env.err" &
env_pid=$!
cleanup() { kill "$env_pid" 2>/dev/null || true; wait "$env_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q '^READY$' "$work/env" 2>/dev/null && break
  kill -0 "$env_pid" 2>/dev/null || { cat "$work/env.err"; exit 1; }
  sleep 0.1
done
grep -q '^READY$' "$work/env" || { echo "the benchmark environment did not start"; cat "$work/env.err"; exit 1; }
# shellcheck disable=SC1091
source <(grep -v '^READY$' "$work/env")

now_us() { echo $(( $(date +%s%N) / 1000 )); }
run_regwarden() {
  printf '%s' "$PASSWORD" | ./target/release/regwarden check --registry "$REGISTRY_URL" \
    --repository "$REPOSITORY" --username "$USERNAME" --password-stdin --ca-file "$CA_FILE" >/dev/null
}
run_skopeo() {
  skopeo list-tags --cert-dir "$CERT_DIR" --creds "$USERNAME:$PASSWORD" \
    "docker://$REGISTRY_HOST/$REPOSITORY" >/dev/null
}
time_one() {
  local start end
  start=$(now_us)
  "$1" || { echo "$1 failed on run $i" >&2; exit 1; }
  end=$(now_us)
  echo $(( end - start )) >>"$work/$1.us"
}

# One warm-up of each (page cache, first TLS handshake of the registry).
run_regwarden; run_skopeo
for i in $(seq 1 "$runs"); do
  if (( i % 2 )); then time_one run_regwarden; time_one run_skopeo
  else time_one run_skopeo; time_one run_regwarden; fi
done

median() { sort -n "$1" | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }'; }
r=$(median "$work/run_regwarden.us")
s=$(median "$work/run_skopeo.us")
echo "runs per tool:           $runs (interleaved, alternating order)"
echo "regwarden check median:  $r ms"
echo "skopeo list-tags median: $s ms"
awk -v r="$r" -v s="$s" 'BEGIN { printf "ratio regwarden/skopeo:  %.2f (target: at most 0.50)\n", r / s }'
