#!/usr/bin/env bash
# Soft Prompt Lab build entry point.
#   ./build.sh         set up (rustup target) and build the native command line and the wasm library
#   ./build.sh test    set up, then run every test (native) and check the wasm32 build
# Set CARGO_TARGET_DIR to share build outputs between checkouts (CI does).
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 with rustup" >&2; exit 1; }
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
}

build() {
  cargo build --release --bin soft-prompt-lab
  cargo build --release --lib --target wasm32-unknown-unknown
  echo "command line: ${CARGO_TARGET_DIR:-target}/release/soft-prompt-lab --help"
}

run_tests() {
  cargo test --all-targets
  # The core must compile for the browser from the same code.
  cargo build --lib --target wasm32-unknown-unknown
}

setup
case "${1:-build}" in
  build) build ;;
  test) run_tests ;;
  *) echo "usage: ./build.sh [build|test]" >&2; exit 2 ;;
esac
