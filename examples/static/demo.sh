#!/usr/bin/env bash
# The static example, end to end, on this machine:
#  1. start a CNCF Distribution registry on 127.0.0.1 (free port, temp storage),
#  2. `cargo ocipkg publish` the Rust staticlib in examples/static/rust/lib to it,
#  3. `cargo run` examples/static/rust/exe, whose build.rs pulls and links it.
# Installs what it and the tests need (scripts/install-deps.sh) when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

# What the demo and the tests need (Debian packages), installed if missing.
bash scripts/install-deps.sh

work="$(mktemp -d)"
registry_pid=""
cleanup() {
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:0
YAML
/usr/bin/docker-registry serve "$work/config.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
port=""
for _ in $(seq 200); do
  port="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/registry.log" | head -n1 | sed 's/.*://')" || true
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$work/registry.log" >&2; echo "demo: the registry did not start" >&2; exit 1; }
echo "demo: registry listening on 127.0.0.1:$port" >&2

echo "demo: building cargo-ocipkg" >&2
cargo build --quiet --features cli --bin cargo-ocipkg

# One target dir for the examples, so ocipkg is compiled once for both.
export CARGO_TARGET_DIR="$root/target/examples"
repository="127.0.0.1:$port/ocipkg/static-example"

echo "demo: publishing examples/static/rust/lib to $repository:latest" >&2
(cd examples/static/rust/lib && "$root/target/debug/cargo-ocipkg" ocipkg publish --release \
  --registry "$repository" --tag latest)

echo "demo: building and running examples/static/rust/exe" >&2
(cd examples/static/rust/exe && OCIPKG_STATIC_EXAMPLE_REF="$repository:latest" cargo run --quiet)
