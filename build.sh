#!/usr/bin/env bash
# Soft Prompt Lab build entry point.
#   ./build.sh serve   set up, build the page (release wasm + JS libraries) into www/, serve it
#   ./build.sh         set up, build the page and the native command line
#   ./build.sh test    set up, run every test: native (cargo test), the page in headless Chromium (its
#                      GPU kernels on SwiftShader there, and on lavapipe in Node), and the hosted
#                      page's cross-engine subset in Chromium, Firefox ESR and WebKit (on the
#                      shipped build; the rest on the same build without wasm-opt)
#   ./build.sh test-gpu  the parity fixtures on native wgpu with fusion (lavapipe: no GPU needed)
#   ./build.sh dist    set up, build the page, and make dist/: the site for any static host (tools/dist.mjs)
#   ./build.sh bench   the speed figures, ours against PyTorch + PEFT and the page's: BENCHMARKS.md
# Set CARGO_TARGET_DIR to share build outputs between checkouts (CI does); PORT picks the port.
set -euo pipefail
cd "$(dirname "$0")"
target_dir="${CARGO_TARGET_DIR:-target}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust 1.95 with rustup" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or newer" >&2; exit 1; }
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  # wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
  local want
  want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
    echo "installing wasm-bindgen-cli $want (about a minute, once)"
    # Not --locked: the locked build needs a dependency version missing from the registry index.
    # --debug: 75 s to build here against 3 min 38 s optimised; it then takes 13 s instead of 3 s
    # on the page's wasm, with byte-identical output.
    cargo install wasm-bindgen-cli --version "$want" --debug
  fi
  # JavaScript libraries and tools, exactly as package-lock.json pins them.
  if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

# build_page [test]: the release wasm and its JavaScript glue into www/pkg, the libraries into
# www/vendor. The shipped page is also run through wasm-opt (`optimise`); `test` leaves that out
# (run_tests optimises a copy meanwhile, for the tests of the hosted form).
build_page() {
  cargo build --release --lib --target wasm32-unknown-unknown
  local wasm="$target_dir/wasm32-unknown-unknown/release/soft_prompt_lab.wasm"
  rm -rf www/pkg www/vendor
  wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir www/pkg "$wasm"
  [ "${1:-}" = test ] || optimise www/pkg/soft_prompt_lab_bg.wasm www/pkg/soft_prompt_lab_bg.wasm
  mkdir -p www/vendor
  cp node_modules/echarts/dist/echarts.esm.min.js www/vendor/
  cp node_modules/fflate/esm/browser.js www/vendor/fflate.js
  wasm_size
}

# optimise IN OUT: npm binaryen's wasm-opt -Os (Debian's version 108 produces a broken module).
# It takes ~5 minutes on one core and leaves the gzip size about the same (4.3 vs 4.1 MB), but
# WebKit compiles the smaller module faster: ready 2.2-3.8 s against 4.7-5.3 s without it (README,
# "Tests and benchmarks"); Chromium is the same either way.
optimise() {
  node_modules/.bin/wasm-opt -Os --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$1" -o "$2"
}

wasm_size() {
  local raw gz
  raw=$(stat -c %s www/pkg/soft_prompt_lab_bg.wasm)
  gz=$(gzip -9 -c www/pkg/soft_prompt_lab_bg.wasm | wc -c)
  echo "page built in www/: wasm $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip"
}

build_cli() {
  # The dev profile is optimised (opt-level 3) and shares its build with the tests.
  cargo build --bin soft-prompt-lab
  echo "command line: $target_dir/debug/soft-prompt-lab --help"
}

browser() {
  # Debian's Chromium drives the page tests (never a downloaded browser).
  apt_install chromium
}

engines() {
  # The cross-engine subset (tests/e2e/engines.test.mjs) also runs in Debian's Firefox ESR and in
  # WebKit (WebKitWebDriver with its MiniBrowser, on a virtual display).
  apt_install chromium firefox-esr webkit2gtk-driver xvfb xauth
}

lavapipe() {
  # Mesa's CPU Vulkan driver: native wgpu finds it as an adapter, so the GPU tests need no GPU, and
  # so does Dawn's WebGPU for Node (tests/e2e/lavapipe.test.mjs), which refuses Mesa before 25
  # (Debian 12 ships 22.3): there it comes from Debian's backports.
  apt_install mesa-vulkan-drivers libvulkan1
  local have
  have=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)
  dpkg --compare-versions "$have" ge 25 && return
  local codename list
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  list=/etc/apt/sources.list.d/$codename-backports.sources
  echo "installing Mesa 25's lavapipe from Debian's $codename-backports for the tests (this has $have)"
  [ -f "$list" ] || printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$codename" | as_root tee "$list" >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -t "$codename-backports" mesa-vulkan-drivers
}

# apt_install PACKAGE...: installs Debian's packages unless each is installed already.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return
  echo "installing Debian's ${missing[*]} for the tests"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# The page tests that run the hosted form (dist/) in every engine: on the shipped (optimised)
# build. The rest run on the test build, in Chromium (and lavapipe.test.mjs, the page's engine on
# Mesa's lavapipe, in Node).
SHIPPED_TESTS=(tests/e2e/engines.test.mjs tests/e2e/dist.test.mjs)

run_tests() {
  # The page's wasm first: its optimisation (one core, ~5 min) runs beside the native build.
  timed "page build" build_page test
  local shipped
  shipped=$(mktemp -d)/soft_prompt_lab_bg.wasm
  optimise www/pkg/soft_prompt_lab_bg.wasm "$shipped" &
  local optimising=$!
  timed "native tests" cargo test
  # The reader's way in (examples/train_bundled.rs) must keep working: built and run.
  timed "example" cargo run --example train_bundled
  timed "wasm-opt (what was left)" wait "$optimising"
  timed "browsers" engines
  timed "lavapipe" lavapipe
  local test_build=()
  for f in tests/e2e/*.test.mjs; do
    [[ " ${SHIPPED_TESTS[*]} " == *" $f "* ]] || test_build+=("$f")
  done
  timed "page tests" node --test --test-concurrency=1 "${test_build[@]}"
  cp "$shipped" www/pkg/soft_prompt_lab_bg.wasm
  wasm_size
  timed "shipped page tests" node --test --test-concurrency=1 "${SHIPPED_TESTS[@]}"
  # CI keeps under 45 minutes from nothing: where the time went, at the end of the log.
  echo "time by phase: $(IFS=,; echo "${phases[*]}" | sed 's/,/, /g')"
}

# timed LABEL COMMAND...: runs COMMAND and notes its wall time under LABEL in `phases`.
phases=()
timed() {
  local label=$1 start=$SECONDS
  shift
  "$@"
  phases+=("$label $((SECONDS - start)) s")
}

gpu_tests() {
  # The fixtures on native wgpu, fused as the page's build, on lavapipe where there is no GPU. Not
  # in `test`: burn's native wgpu stack is a second build of burn and cubecl (28 minutes from
  # nothing here, against 9 for the plain one); `test` checks the page's own build of the kernels
  # against the same fixtures on SwiftShader (Chromium) and on lavapipe (Node, Dawn). Then the GPU
  # path's own kernels against burn's ops.
  lavapipe
  cargo test --features fusion --test gpu
  cargo test --features fusion --lib kernels
}

bench() {
  # The reference side (PyTorch + PEFT, pinned) in its own virtual environment, made once.
  local venv=tools/bench/.venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r tools/bench/requirements.txt
  fi
  build_page
  browser
  lavapipe
  {
    echo "# Benchmarks"
    echo
    echo "Made by \`./build.sh bench\` on $(date -u +%Y-%m-%d): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
    echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(rustc --version); Chromium $(/usr/bin/chromium --version | awk '{print $2}')."
    echo
    cargo bench --profile dev --bench step -- --python "$venv/bin/python"
    echo
    cargo bench --profile dev --bench memory
    echo
    node tests/e2e/measure.mjs
    echo
    # The page in Chromium, Firefox and WebKit: ready, and the default run on one engine against
    # the measured pool, alternated.
    engines
    echo "### The page in three browser engines"
    echo
    node tests/e2e/measure-engines.mjs 2
    echo
    # Native wgpu (the GPU if there is one, else lavapipe): dispatches per step, unfused and fused.
    cargo bench --profile dev --bench step --features gpu -- --gpu --gpu-steps 3
    echo
    cargo bench --profile dev --bench step --features fusion -- --gpu --gpu-steps 3
    echo
    # The GPU figures come from a machine with a GPU (see the file); this one may have none.
    cat tools/bench/gpu.md
  } | tee BENCHMARKS.md
}

timed "set-up" setup
case "${1:-build}" in
  build) build_page; build_cli ;;
  serve) build_page; exec node tools/serve.mjs www "${PORT:-8080}" ;;
  dist) build_page; node tools/dist.mjs www dist ;;
  test) run_tests ;;
  test-gpu) gpu_tests ;;
  bench) bench ;;
  *) echo "usage: ./build.sh [build|serve|dist|test|test-gpu|bench]" >&2; exit 2 ;;
esac
