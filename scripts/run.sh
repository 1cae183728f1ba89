#!/usr/bin/env bash
# Generates from a prompt and shows how many iterations each token thought.
# Without arguments it runs the bundled golden test model; pass `loopscope generate` flags to change that.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ $# -eq 0 ]; then
    set -- --model engine/tests/fixtures/huginn-tiny-a --prompt-ids 3,14,15,92,65 --steps 16 --exit kl:1e-3 --max-tokens 12
fi
exec cargo run --quiet --release -p loopscope-engine --features wgpu --bin loopscope -- generate "$@"
