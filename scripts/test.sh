#!/usr/bin/env bash
# Runs every test of the project: unit, golden, session, training and bad-input tests on the CPU
# backend, the golden comparison on wgpu (lavapipe when there is no GPU), and the page built and
# driven in headless Chromium with and without WebGPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo test --workspace --locked
# The kernels (quantized products, RMSNorm) on a real wgpu device (lavapipe without a GPU).
cargo test --locked -p loopscope-engine --features wgpu --test kernels
# Training steps on the same device follow the CPU's.
cargo test --locked -p loopscope-train --features wgpu --test smoke wgpu
# And through burn's kernel fusion (`--features fusion`, the faster way to train on a GPU).
cargo test --locked -p loopscope-train --features fusion --test smoke wgpu

# The same golden comparison through the command-line tool, on both backends.
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- golden engine/tests/fixtures/huginn-tiny-a --backend wgpu

# The page, built and tested in a real browser. Screenshots: artifacts/browser/.
scripts/build-page.sh
node tests/browser/page.mjs dist
node tests/browser/share.mjs dist
node tests/browser/shapes.mjs dist

# A Huginn-0125-shaped checkpoint (the published dims and layout, random bf16 weights in 4
# shards, 7.8 GB) converted to q4 (2.2 GB in 1 GiB shards) and loaded by the page's model picker.
huginn=$(mktemp -d "${TMPDIR:-/var/tmp}/loopscope-huginn.XXXXXX")
trap 'rm -rf "$huginn"' EXIT
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --example random_checkpoint -- \
    engine/examples/huginn-0125-config.json "$huginn/bf16" 4
cargo run --quiet --locked --release -p loopscope-engine --features wgpu --bin loopscope -- \
    quantize --in "$huginn/bf16" --out "$huginn/q4" --format q4
rm -rf "$huginn/bf16"
cp public/models/loopscope-tiny/tokenizer.json "$huginn/q4/"
node tests/browser/huginn.mjs dist "$huginn/q4"
