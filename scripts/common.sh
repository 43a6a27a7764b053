# Shared by scripts/up and scripts/test: make sure the toolchain and nats-server are here.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "error: cargo (Rust stable) is required; install it with rustup (https://rustup.rs)" >&2
    exit 1
  fi
fi

if [ -z "${NATS_SERVER_BIN:-}" ]; then
  NATS_SERVER_BIN="$(./scripts/install-nats | tail -n 1)"
  export NATS_SERVER_BIN
fi
