#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages the demo and the tests use, when
# missing: the CNCF Distribution registry, and the peer tools skopeo,
# buildah and umoci, htpasswd (apache2-utils) and openssl (test certificates, JWTs),
# and the real C libraries the tests package (sqlite3, zlib).
set -euo pipefail
need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v buildah >/dev/null || need+=(buildah)
command -v umoci >/dev/null || need+=(umoci)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v script >/dev/null || need+=(bsdutils)
# zstd layers as other tools write them (one frame, with its checksum).
command -v zstd >/dev/null || need+=(zstd)
# Real libraries the -sys crate tests package: static, shared with SONAME
# links, and a pkg-config file.
[ -f /usr/lib/x86_64-linux-gnu/libsqlite3.a ] || need+=(libsqlite3-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
command -v g++ >/dev/null || need+=(g++)
# The aarch64 cross build (linker, C library, qemu to run it).
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -f /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
# The Rust standard library for the aarch64 cross build.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu >&2
fi
