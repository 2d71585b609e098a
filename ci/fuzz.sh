#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (fuzz/fuzz_targets/), each for SECONDS (default
# 60), with cargo fuzz (libFuzzer) on the nightly toolchain, from a seed corpus made of the
# repository's fixtures. Fails on any crash, panic or broken round trip; a crashing input is
# left in fuzz/artifacts/<target>/. The corpus each run grows is kept in target/fuzz-corpus/.
#   ci/fuzz.sh            # 60 s per target
#   ci/fuzz.sh 600        # ten minutes per target
#   TARGETS="config_file" ci/fuzz.sh 30
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=${TARGETS:-"webhook_signature gitlab_event registry_answers qovery_marker config_file"}
cargo_fuzz_version=0.13.1

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo fuzz needs a nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "==> installing cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi

# Seeds: what each parser reads in real life, from the repository.
seeds=target/fuzz-seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{webhook_signature,gitlab_event,registry_answers,qovery_marker,config_file}
for f in tests/fixtures/gitlab-webhooks/*.json; do
  event=$(awk -v f="$(basename "$f")" -F'|' 'index($2, f) { gsub(/^ *`|` *$/, "", $3); print $3 }' \
    tests/fixtures/gitlab-webhooks/README.md)
  { printf '%s\n' "$event"; cat "$f"; } >"$seeds/gitlab_event/$(basename "$f")"
  # A signed delivery: id, timestamp, signature, no token, the body.
  { printf 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W\n1744578123\nv1,NQozMc8iDwDH92arH2gVV9LETTfPzSi5MSXoyX7kuKo=\n\n'; cat "$f"; } \
    >"$seeds/webhook_signature/$(basename "$f")"
done
printf 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W\n1744578123\nv1,NQozMc8iDwDH92arH2gVV9LETTfPzSi5MSXoyX7kuKo=\n\n{"object_kind":"deploy_token"}' \
  >"$seeds/webhook_signature/signed"
printf '\n\n\nlegacy-secret\n{"object_kind":"push"}' >"$seeds/webhook_signature/legacy"
printf '%s' 'Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",scope="repository:acme/api:pull"' \
  >"$seeds/registry_answers/challenge"
printf '%s' 'Basic realm="Registry Realm", Bearer realm="https://r.example/token",service="r.example"' \
  >"$seeds/registry_answers/two-challenges"
printf '%s' '{"token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3MiOlt7InR5cGUiOiJyZXBvc2l0b3J5IiwibmFtZSI6ImFjbWUvYXBpIiwiYWN0aW9ucyI6WyJwdWxsIl19XX0.c2ln"}' \
  >"$seeds/registry_answers/token"
printf '%s' '{"access_token":"opaque","expires_in":300}' >"$seeds/registry_answers/access-token"
printf '%s' 'Pulls for acme.
regwarden: binding=api token_id=42 fingerprint=sha256:0123456789ab expires=2027-01-01 retired=41@20261124T103000Z,40@20261124T093000Z instance=ci' \
  >"$seeds/qovery_marker/marker"
printf '%s' 'regwarden: binding=api token_id=1 fingerprint=x expires=never' >"$seeds/qovery_marker/plain"
cp regwarden.example.toml "$seeds/config_file/example.toml"

echo "==> building the fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build --fuzz-dir fuzz >target/fuzz-build.log 2>&1 || {
  tail -n 40 target/fuzz-build.log
  exit 1
}

status=0
for t in $targets; do
  corpus=target/fuzz-corpus/$t
  mkdir -p "$corpus"
  echo "==> fuzzing $t for ${seconds}s"
  log=target/fuzz-$t.log
  if cargo +nightly fuzz run --fuzz-dir fuzz "$t" "$corpus" "$seeds/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log")
    echo "    $t: ${runs:-?} executions, no crash (corpus: $(ls "$corpus" | wc -l) inputs)"
  else
    status=1
    echo "    $t: FAILED; the last lines of its log ($log):"
    tail -n 40 "$log" | sed 's/^/      /'
  fi
done
exit "$status"
