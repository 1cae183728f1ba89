#!/usr/bin/env bash
# Installs everything the project's commands need on a fresh machine. Safe to run again; each step
# is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null

# Mesa's software Vulkan (lavapipe) runs the wgpu backend on machines without a GPU; Debian's
# Chromium runs the page's browser tests (WebGPU through SwiftShader).
need_apt=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.json ] || need_apt+=(mesa-vulkan-drivers)
ldconfig -p | grep -q libvulkan.so.1 || need_apt+=(libvulkan1)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# trunk 0.22 needs a newer rustc than 1.95; 0.21 builds and serves the page.
if ! trunk --version 2>/dev/null | grep -q '0\.21\.14'; then
    cargo install trunk --version 0.21.14 --locked --quiet
fi
# wasm-bindgen-cli must match the wasm-bindgen in Cargo.lock exactly. Not --locked: one of its
# locked dependencies has left the registry.
bindgen=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $bindgen\$"; then
    cargo install wasm-bindgen-cli --version "$bindgen" --quiet
fi

# Front-end tools from npm (package.json pins them): binaryen's wasm-opt (Debian's is too old and
# its output fails in Chromium) and playwright-core, which drives the system Chromium.
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] || [ package.json -nt node_modules ]; then
    npm install --no-audit --no-fund --silent
    touch node_modules
fi
