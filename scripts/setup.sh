#!/usr/bin/env bash
# Installs everything the project's commands need on a fresh machine. Safe to run again.
set -euo pipefail

rustup target add wasm32-unknown-unknown >/dev/null

# Mesa's software Vulkan (lavapipe) runs the wgpu backend on machines without a GPU.
need_apt=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -e /usr/share/vulkan/icd.d/lvp_icd.json ] || need_apt+=(mesa-vulkan-drivers)
ldconfig -p | grep -q libvulkan.so.1 || need_apt+=(libvulkan1)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
