#!/usr/bin/env bash
# Runs every test of the project: unit, golden, session and bad-input tests on the CPU backend,
# the golden comparison on wgpu (lavapipe when there is no GPU), and the wasm build check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo test --workspace --locked

# The same golden comparison through the command-line tool, on both backends.
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a --backend wgpu

# The engine must compile for the browser.
cargo check --locked -p loopscope-engine --target wasm32-unknown-unknown --no-default-features --features ndarray,wgpu
echo "wasm32 check passed"
