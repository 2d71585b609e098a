#!/usr/bin/env bash
# Times reconcile passes over many bindings against the fakes, with a latency added to every
# API call: a pass that rotates every binding, a steady-state pass (nothing to do), then a
# forced pass in which each Qovery registry serves a container and a job (the rotation reads
# them, and checks their image).
# Prints wall times and API calls per binding, for deploy-token bindings and for bindings that
# share one service account. BINDINGS (default 1000), LATENCY_MS (20), CONCURRENCY (8, the
# default of reconcile.concurrency) and CREDENTIALS ("deploy_token service_account") change
# the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
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

cargo build --release --quiet --bin regwarden --example bench_reconcile
for credential in ${CREDENTIALS:-deploy_token service_account}; do
  "${CARGO_TARGET_DIR:-target}"/release/examples/bench_reconcile "${CARGO_TARGET_DIR:-target}"/release/regwarden \
    "${BINDINGS:-1000}" "${LATENCY_MS:-20}" "${CONCURRENCY:-8}" "$credential"
done
