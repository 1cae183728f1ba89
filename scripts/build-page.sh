#!/usr/bin/env bash
# Builds the page into dist/ with the project's own tools and reports the wasm bundle size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
trunk build --release --offline
wasm=$(ls dist/*.wasm)
echo "wasm bundle: $(wc -c < "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) bytes gzipped"
