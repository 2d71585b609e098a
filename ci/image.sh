#!/usr/bin/env bash
# Builds regwarden's image from ci/Containerfile with buildah (no Docker engine needed) and
# prints the image's name on its last line.
#
#   ci/image.sh                    build FROM the Containerfile's own base images
#   STANDIN_BASES=1 ci/image.sh    build FROM base images made here from Debian packages
#
# STANDIN_BASES is for machines that reach Debian's mirror but not Docker Hub (ci/test.sh sets
# it): debootstrap's minimal bookworm stands in for debian:bookworm-slim, and the same system
# plus gcc and this machine's Rust toolchain stands in for rust:<version>-bookworm. Both are made
# once and kept in the image store, so a second run only rebuilds what changed.
#
# Environment: IMAGE (default localhost/regwarden:dev), IMAGE_STORE (default target/image-store:
# a buildah store of this checkout's own, so nothing lands in the machine's), STORAGE_DRIVER
# (default overlay; vfs where overlay can't be mounted).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/regwarden:dev}"
IMAGE_STORE="${IMAGE_STORE:-$PWD/target/image-store}"
STORAGE_DRIVER="${STORAGE_DRIVER:-overlay}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The machines this runs on have cgroup setups the OCI runtimes refuse; chroot isolation needs
# none, and the build steps need nothing more.
export BUILDAH_ISOLATION=chroot

step() { printf '\n==> %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
bah() {
  as_root buildah --root "$IMAGE_STORE/root" --runroot "$IMAGE_STORE/run" \
    --storage-driver "$STORAGE_DRIVER" "$@"
}
have_image() { bah inspect --type image "$1" >/dev/null 2>&1; }

# A container holding a minimal Debian bookworm; prints its name.
debian_container() {
  local c mnt
  c=$(bah from scratch)
  mnt=$(bah mount "$c")
  as_root debootstrap --variant=minbase bookworm "$mnt" "$DEBIAN_MIRROR" >&2
  # As in Docker's debian:*-slim: no documentation, no package lists, and apt keeps neither
  # the packages it downloads nor its caches (what later `apt-get install` layers rely on).
  as_root rm -rf "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/* "$mnt"/usr/share/info/* \
    "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/*.bin "$mnt"/var/cache/apt/archives/*.deb \
    "$mnt"/var/log/bootstrap.log
  as_root tee "$mnt/etc/dpkg/dpkg.cfg.d/docker" >/dev/null <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  as_root tee "$mnt/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  bah umount "$c" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash "$c"
  printf '%s\n' "$c"
}

build_args=()
if [ -n "${STANDIN_BASES:-}" ]; then
  command -v debootstrap >/dev/null || { echo "ci/image.sh: STANDIN_BASES needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
  runtime=localhost/regwarden-standin/debian:bookworm-slim
  if ! have_image "$runtime"; then
    step "making $runtime with debootstrap"
    c=$(debian_container)
    bah commit -q --rm "$c" "$runtime" >/dev/null
  fi

  sysroot=$(rustc --print sysroot)
  version=$(rustc --version | cut -d' ' -f2)
  build=localhost/regwarden-standin/rust:$version-bookworm
  if ! have_image "$build"; then
    step "making $build: $runtime, gcc and the Rust toolchain at $sysroot"
    c=$(bah from --pull=never "$runtime")
    bah run "$c" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*' >&2
    mnt=$(bah mount "$c")
    # cargo fetches crates from inside the build: trust what this machine trusts (a proxy's
    # CA, say), as a base image made for a site would.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
      as_root cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/"
      bah run "$c" -- update-ca-certificates >/dev/null
    fi
    # The toolchain without its documentation, where the official image keeps it.
    as_root mkdir -p "$mnt/usr/local/rust" "$mnt/usr/local/cargo"
    as_root tar -C "$sysroot" --exclude=./share/doc -c . | as_root tar -C "$mnt/usr/local/rust" -x
    bah umount "$c" >/dev/null
    bah config --env CARGO_HOME=/usr/local/cargo \
      --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      "$c"
    bah commit -q --rm "$c" "$build" >/dev/null
  fi
  build_args=(--pull=never --build-arg "BUILD_IMAGE=$build" --build-arg "RUNTIME_IMAGE=$runtime")
fi

step "building $IMAGE from ci/Containerfile"
bah bud --layers --isolation chroot -f ci/Containerfile "${build_args[@]}" -t "$IMAGE" . >&2
bah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2
printf '%s\n' "$IMAGE"
