#!/usr/bin/env bash
# regwarden's test command: installs what the tests need when it is missing, then runs the
# whole suite (format, lints, unit and integration tests). Safe to run again on the same
# machine. The real servers the tests use (the container registry, PostgreSQL clusters, Prism)
# are started by the tests themselves, on loopback ports the system picks (PostgreSQL on a Unix
# socket of its own), and stopped when each test ends.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages: the registry the tests run, and the tools they call.
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The image (ci/Containerfile) is built with buildah, FROM base images made with debootstrap.
image_tests=""
if [ -z "${REGWARDEN_SKIP_IMAGE:-}" ] && [ "$(id -u)" -eq 0 ]; then
  image_tests=1
  command -v buildah >/dev/null 2>&1 || missing+=(buildah)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
fi
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  # The docker-registry and postgresql packages would start system-wide servers; the tests
  # start their own, so forbid service starts during the install.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    trap 'as_root rm -f "$policy"' EXIT
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node tools, pinned in ci/package-lock.json, installed into ci/node_modules.
if [ ! -x ci/node_modules/.bin/prism ] || [ ! -x ci/node_modules/.bin/gitlab-ci-local ] \
  || ! cmp -s ci/package-lock.json ci/node_modules/.regwarden-lock; then
  step "installing the pinned Node tools (ci/package.json)"
  npm ci --prefix ci --no-audit --no-fund --loglevel=error
  cp ci/package-lock.json ci/node_modules/.regwarden-lock
fi
export REGWARDEN_PRISM="$PWD/ci/node_modules/.bin/prism"
export REGWARDEN_GITLAB_CI_LOCAL="$PWD/ci/node_modules/.bin/gitlab-ci-local"

if [ -n "${CI:-}" ]; then
  export CARGO_TERM_COLOR=never
fi
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked --features fault-injection -- -D warnings

if [ -n "$image_tests" ]; then
  step "building the image (ci/image.sh)"
  export REGWARDEN_IMAGE_STORE="$PWD/target/image-store"
  export REGWARDEN_IMAGE_STORAGE_DRIVER="${STORAGE_DRIVER:-overlay}"
  REGWARDEN_IMAGE=$(IMAGE=localhost/regwarden:test IMAGE_STORE="$REGWARDEN_IMAGE_STORE" \
    STANDIN_BASES="${STANDIN_BASES-1}" ci/image.sh | tail -n 1)
  export REGWARDEN_IMAGE
else
  echo "note: the image is not built (buildah builds and runs it as root only${REGWARDEN_SKIP_IMAGE:+; REGWARDEN_SKIP_IMAGE is set}): the image tests will skip"
fi

# A test holds 1,500 connections open against the server (its connection cap): allow more
# descriptors than a login shell's usual 1,024, up to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 4096 2>/dev/null || true

# A test that cannot find a tool it needs fails under CI; elsewhere it skips, loudly, and
# lists itself here for the summary below.
export REGWARDEN_SKIP_LOG="$PWD/target/regwarden-skipped.log"
mkdir -p target
: >"$REGWARDEN_SKIP_LOG"

# fault-injection adds the crash points the crash-safety tests (invariant I4) abort at.
step "tests"
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast --features fault-injection || status=$?
else
  cargo test --locked --no-fail-fast --features fault-injection || status=$?
fi
# The parsers that read untrusted input, fuzzed for a short while (ci/fuzz.sh; longer runs:
# README, "Fuzzing").
step "fuzzing (ci/fuzz.sh ${REGWARDEN_FUZZ_SECONDS:-10})"
bash ci/fuzz.sh "${REGWARDEN_FUZZ_SECONDS:-10}" || status=1

skipped=$(grep -c . "$REGWARDEN_SKIP_LOG" || true)
if [ "$skipped" -gt 0 ]; then
  printf '\n%s test(s) skipped for want of a tool (they prove nothing here):\n' "$skipped"
  sed 's/^/  - /' "$REGWARDEN_SKIP_LOG"
else
  echo "no test skipped for want of a tool"
fi
exit "$status"
