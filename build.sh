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
  # wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
  local want
  want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
    echo "installing wasm-bindgen-cli $want (a few minutes, once)"
    # Not --locked: the locked build needs a dependency version missing from the registry index.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

build() {
  # The dev profile is optimised (opt-level 3) and shares its build with the tests; the release
  # profile (size-optimised, fat LTO) is for the page's wasm bundle.
  cargo build --bin soft-prompt-lab
  cargo build --lib --target wasm32-unknown-unknown
  echo "command line: ${CARGO_TARGET_DIR:-target}/debug/soft-prompt-lab --help"
}

run_tests() {
  cargo test
  # The core compiled for the browser, and its tokenizer checked there (Node runs the wasm).
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --target wasm32-unknown-unknown --test wasm_tokenizer
}

setup
case "${1:-build}" in
  build) build ;;
  test) run_tests ;;
  *) echo "usage: ./build.sh [build|test]" >&2; exit 2 ;;
esac
