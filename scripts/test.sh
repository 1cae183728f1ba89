#!/usr/bin/env bash
# Runs every test of the project: unit, golden, session, training and bad-input tests on the CPU
# backend, the golden comparison on wgpu (lavapipe when there is no GPU), and the page built and
# driven in headless Chromium with and without WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo test --workspace --locked
# The quantized-matmul kernels on a real wgpu device (lavapipe without a GPU).
cargo test --locked -p loopscope-engine --features wgpu --test kernels

# The same golden comparison through the command-line tool, on both backends.
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a --backend wgpu

# The page, built and tested in a real browser. Screenshots: artifacts/browser/.
scripts/build-page.sh
node tests/browser/page.mjs dist
node tests/browser/share.mjs dist
node tests/browser/shapes.mjs dist
