#!/usr/bin/env bash
# Builds the page and serves it on http://127.0.0.1:8080 (open it in a browser with WebGPU; others
# run the model on the CPU). Set PORT to use another port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
exec trunk serve --release --offline --port "${PORT:-8080}"
