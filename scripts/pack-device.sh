#!/bin/bash
# Prepares what scripts/gpu-check.sh needs on the GPU machine, all under .device/ (ignored by git):
#   .device/node.xz, .device/include/   Node itself and the Node-API / node-addon-api headers (pack-node.sh)
#   .device/js/                         ts/, bench/ and test/ compiled to plain JavaScript (tsconfig.device.json),
#                                       with the few runtime packages they import (uvu and its deps, yaml)
# and prints the carry list and the command for the device run. The working tree (native/, scripts/,
# CMakeLists.txt) travels by itself; nothing else is needed there: no node_modules, no network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packnode=""
for p in "$root/shared/gpu/pack-node.sh" "$root/../shared/gpu/pack-node.sh" /work/shared/gpu/pack-node.sh; do
  if [ -f "$p" ]; then packnode=$p; break; fi
done
# pack-node.sh appends to .git/info/exclude, which fails in a git worktree (.git is a file there); .device/ is in
# .gitignore anyway, so do the same steps here when it fails.
if [ -z "$packnode" ] || ! bash "$packnode" >/dev/null 2>&1; then
  nodebin=$(readlink -f "$(command -v node)")
  mkdir -p .device/include
  [ -s .device/node.xz ] || xz -6 -T2 -c "$nodebin" > .device/node.xz
  cp "$(dirname "$nodebin")/../include/node"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} .device/include/
  cp node_modules/node-addon-api/*.h .device/include/
fi

rm -rf .device/js
# Type errors in tests do not stop the emit (tsx runs them unchecked here too); a missing output does.
node_modules/.bin/tsc -p tsconfig.device.json >/tmp/pack-device-tsc.log 2>&1 ||
  echo "pack-device: tsc reported type errors (JavaScript emitted anyway; see /tmp/pack-device-tsc.log)" >&2
[ -f .device/js/ts/index.js ] || { cat /tmp/pack-device-tsc.log >&2; exit 1; }
echo '{"type": "module"}' > .device/js/package.json
# The Python halves of benchmarks and reference tests, next to the compiled JS that spawns them.
mkdir -p .device/js/bench .device/js/test/reference
cp bench/*.py .device/js/bench/ 2>/dev/null || true
cp test/reference/*.py .device/js/test/reference/ 2>/dev/null || true
# Test fixtures (tokenizers, small checkpoints) that the compiled tests read.
[ -d test/fixtures ] && cp -R test/fixtures .device/js/test/
mkdir -p .device/js/node_modules
# The runtime packages the compiled library imports (not the build tools cmake-js / node-addon-api), and uvu.
for pkg in uvu dequal diff kleur sade mri yaml @huggingface/tokenizers cli-progress string-width strip-ansi \
           ansi-regex emoji-regex is-fullwidth-code-point; do
  if [ -d "node_modules/$pkg" ]; then mkdir -p ".device/js/node_modules/$(dirname "$pkg")"; cp -RL "node_modules/$pkg" ".device/js/node_modules/$pkg"; fi
done

size=$(du -sm .device | cut -f1)
tracked=$(git ls-files -z --cached --others --exclude-standard | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
echo "pack-device: .device is ${size} MiB, the working tree ${tracked} MiB (limit 64 MiB together)"
[ $((size + tracked)) -le 64 ] || { echo "pack-device: too big to carry" >&2; exit 1; }

cat <<MSG

Device run (one call; the lead runs it):
  carry:   [".device"]
  command: bash scripts/gpu-check.sh
  timeout_s: 570
Rehearse it here first: LITLORA_GPU_CHECK_DEVICE=cpu bash scripts/gpu-check.sh
MSG
