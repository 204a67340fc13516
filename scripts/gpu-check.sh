#!/bin/bash
# litlora's GPU check: the one script run on a lent GPU machine. It needs only what
# scripts/pack-device.sh put under .device/ (node, the Node-API headers, the compiled JavaScript) and the
# working tree; no node_modules, no network. Steps, each timed and recorded, then a summary table last:
#   1. environment  node (carried in .device/node.xz when the machine has none), Python PyTorch, GPU
#   2. build        plain CMake + Ninja against the machine's PyTorch (torch.utils.cmake_prefix_path),
#                   -DCMAKE_JS_INC=.device/include, CUDA arch 90, into build-gpu/ (kept between calls)
#   3. ops          scripts/gpu-check.mjs: CUDA smoke (tensors to the GPU and back), LoRA ops vs PyTorch on
#                   the GPU (float32, bfloat16, bf16+fp32 adapters), fused QKV, dropout, merge/unmerge
#   4. op tests     the compiled uvu op tests (.device/js/test/*lora*), with LITLORA_TEST_DEVICE set
#   5. bench        .device/js/bench/ops.js --device cuda --dtype bfloat16 --tokens 8192 --in 4096 --out 4096 --r 16
# Results go to $OUT (the device tool brings that folder back), else ./gpu-check-out.
#
# Rehearse everything on a CPU machine: LITLORA_GPU_CHECK_DEVICE=cpu bash scripts/gpu-check.sh
# (same flow, the project's .venv Torch, a small bench). Other knobs: LITLORA_GPU_CHECK_PYTHON,
# LITLORA_GPU_CHECK_BUILD (build folder), LITLORA_GPU_CHECK_TESTS (regex on compiled test files),
# LITLORA_GPU_CHECK_BENCH_ARGS, LITLORA_GPU_CHECK_BUDGET (seconds for all steps; default 540).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

DEVICE=${LITLORA_GPU_CHECK_DEVICE:-cuda}
BUILD=${LITLORA_GPU_CHECK_BUILD:-build-gpu}
OUTDIR=${OUT:-$root/gpu-check-out}
JS=$root/.device/js
BUDGET=${LITLORA_GPU_CHECK_BUDGET:-540}
TESTS=${LITLORA_GPU_CHECK_TESTS:-lora}
if [ "$DEVICE" = cpu ]; then
  BENCH_ARGS=${LITLORA_GPU_CHECK_BENCH_ARGS:---device cpu --dtype float32 --tokens 512 --in 512 --out 512 --r 16}
else
  BENCH_ARGS=${LITLORA_GPU_CHECK_BENCH_ARGS:---device cuda --dtype bfloat16 --tokens 8192 --in 4096 --out 4096 --r 16}
fi
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
t_start=$(date +%s)
rows=()
failures=0

# Seconds left for a step: its own cap, or what remains of the budget (keeping 15 s for the summary).
left() { local cap=$1 rem=$((BUDGET - ($(date +%s) - t_start) - 15)); [ "$rem" -lt "$cap" ] && cap=$rem; [ "$cap" -lt 5 ] && cap=5; echo "$cap"; }
# step NAME FUNCTION: runs it, records PASS / FAIL / SKIP (exit 3) with its time and a note from $NOTE.
step() {
  local name=$1 fn=$2 t0 rc status
  t0=$(date +%s); NOTE=""
  echo; echo "=== $name ==="
  "$fn"; rc=$?
  case $rc in 0) status=PASS ;; 3) status=SKIP ;; *) status=FAIL; failures=$((failures + 1)) ;; esac
  rows+=("$(printf '%-12s %-5s %5ss  %s' "$name" "$status" "$(($(date +%s) - t0))" "$NOTE")")
  return $rc
}

env_step() {
  # Node: the carried binary when the machine has none (or one older than 20), and always when rehearsing.
  local major=0
  command -v node >/dev/null && major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ -s .device/node.xz ] && { [ "$DEVICE" = cpu ] || [ "$major" -lt 20 ]; }; then
    mkdir -p /tmp/litlora-node && xz -dc .device/node.xz > /tmp/litlora-node/node && chmod +x /tmp/litlora-node/node
    export PATH=/tmp/litlora-node:$PATH
  fi
  command -v node >/dev/null || { NOTE="no node and no .device/node.xz (run scripts/pack-device.sh)"; return 1; }
  [ -f "$JS/ts/index.js" ] || { NOTE="no compiled JS in .device/js (run scripts/pack-device.sh; carry .device)"; return 1; }
  PY=${LITLORA_GPU_CHECK_PYTHON:-}
  if [ -z "$PY" ]; then
    if [ "$DEVICE" = cpu ] && [ -x .venv/bin/python ]; then PY=$root/.venv/bin/python; else PY=python3; fi
  fi
  local torch_info
  torch_info=$("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")') ||
    { NOTE="$PY cannot import torch"; return 1; }
  TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  command -v nvidia-smi >/dev/null && nvidia-smi -L
  echo "node $(node --version) ($(command -v node)); python $PY; torch $torch_info"
  NOTE="node $(node --version), torch $torch_info"
  if [ "$DEVICE" != cpu ] && ! "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    NOTE="$NOTE; PyTorch sees no GPU"; return 1
  fi
  # The compiled tests and bench find their reference Python here (test/helpers/python.ts reads it).
  mkdir -p "$JS/build"
  printf '{"python": "%s"}\n' "$PY" > "$JS/build/litlora-env.json"
}

build_step() {
  local gen=() args
  command -v ninja >/dev/null && gen=(-G Ninja)
  args=(-S "$root" -B "$root/$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$TORCH_CMAKE"
        "-DCMAKE_JS_INC=$root/.device/include")
  if [ "$DEVICE" != cpu ]; then
    command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
    command -v nvcc >/dev/null || { NOTE="nvcc not found (PATH, /usr/local/cuda/bin)"; return 1; }
    export CUDACXX=${CUDACXX:-$(command -v nvcc)}
    export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$CUDACXX")")")}
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
    args+=(-DCMAKE_CUDA_ARCHITECTURES=90 "-DCUDAToolkit_ROOT=$CUDA_HOME" "-DCMAKE_CUDA_COMPILER=$CUDACXX")
  fi
  echo "cmake ${args[*]}"
  if ! timeout "$(left 120)" cmake "${args[@]}" > "$OUTDIR/cmake-configure.log" 2>&1; then
    tail -40 "$OUTDIR/cmake-configure.log"; NOTE="cmake configure failed (cmake-configure.log)"; return 1
  fi
  grep -E 'CUDA|Torch' "$OUTDIR/cmake-configure.log" | grep -v '^ ' | head -12
  if ! timeout "$(left 360)" cmake --build "$root/$BUILD" -j "$(nproc)" > "$OUTDIR/cmake-build.log" 2>&1; then
    grep -m 20 -E 'error|Error' "$OUTDIR/cmake-build.log"; tail -20 "$OUTDIR/cmake-build.log"
    NOTE="build failed (cmake-build.log)"; return 1
  fi
  cp "$root/$BUILD/litlora-build.json" "$OUTDIR/" 2>/dev/null
  local missing
  missing=$(ldd "$root/$BUILD/litlora.node" | grep 'not found')
  [ -z "$missing" ] || { echo "$missing"; NOTE="unresolved libraries: $missing"; return 1; }
  readelf -d "$root/$BUILD/litlora.node" | grep -E 'RUNPATH|RPATH'
  NOTE=$(cat "$root/$BUILD/litlora-build.json")
  if [ "$DEVICE" != cpu ] && ! grep -q '"cuda": "ON"' "$root/$BUILD/litlora-build.json"; then
    NOTE="built WITHOUT CUDA: Torch's CMake config did not find CUDA (cmake-configure.log)"; return 1
  fi
  # libtorch_cuda registers the CUDA backend when loaded; a linker that dropped it (--as-needed) leaves no CUDA.
  if [ "$DEVICE" != cpu ] && ! readelf -d "$root/$BUILD/litlora.node" | grep -q 'libtorch_cuda'; then
    NOTE="libtorch_cuda.so is not among the addon's NEEDED libraries: CUDA would be unavailable"; return 1
  fi
  export LITLORA_ADDON=$root/$BUILD/litlora.node
  export LITLORA_PROBE_CACHE=$root/$BUILD/probe-cache
}

ops_step() {
  timeout "$(left 240)" node scripts/gpu-check.mjs --device "$DEVICE" --lib "$JS/ts/index.js" --python "$PY" --out "$OUTDIR" \
    2>&1 | tee "$OUTDIR/ops.txt"
  local rc=${PIPESTATUS[0]}
  NOTE=$(grep -o '[0-9]* passed, [0-9]* failed' "$OUTDIR/ops.txt" | tail -1)
  [ -n "$NOTE" ] || NOTE="exit $rc"
  return $rc
}

tests_step() {
  local files=() f rc=0 total=0 passed=0 out
  for f in "$JS"/test/*.test.js; do [[ $(basename "$f") =~ $TESTS ]] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || { NOTE="no compiled test matches /$TESTS/"; return 3; }
  for f in "${files[@]}"; do
    out=$(LITLORA_TEST_DEVICE=$DEVICE NO_COLOR=1 timeout "$(left 150)" node "$f" 2>&1); [ $? -eq 0 ] || rc=1
    echo "$out" | tail -25
    total=$((total + $(echo "$out" | sed -n 's/.*Total: *\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 1)))
    passed=$((passed + $(echo "$out" | sed -n 's/.*Passed: *\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 0)))
  done
  NOTE="${#files[@]} files: $passed passed, $((total - passed)) failed (LITLORA_TEST_DEVICE=$DEVICE)"
  return $rc
}

bench_step() {
  [ -f "$JS/bench/ops.js" ] || { NOTE="no compiled bench/ops.js"; return 3; }
  # shellcheck disable=SC2086
  timeout "$(left 300)" node "$JS/bench/ops.js" $BENCH_ARGS 2>&1 | tee "$OUTDIR/bench-ops.txt"
  local rc=${PIPESTATUS[0]}
  NOTE="$BENCH_ARGS"
  return "$rc"
}

# More CUDA benchmark rows (model, train, generate, merge): LITLORA_GPU_CHECK_EXTRA holds entries
# "name:bench/file.js:args" separated by ';'; each gets at most 150 s and its output is kept in bench-NAME.txt.
EXTRA=${LITLORA_GPU_CHECK_EXTRA:-}
extra_step() {
  local entry name file args rc=0 ran=0
  [ -n "$EXTRA" ] || { NOTE="none asked for (LITLORA_GPU_CHECK_EXTRA)"; return 3; }
  IFS=';' read -ra entries <<< "$EXTRA"
  for entry in "${entries[@]}"; do
    IFS=':' read -r name file args <<< "$entry"
    [ -f "$JS/$file" ] || { echo "no compiled $file"; rc=1; continue; }
    echo "--- $name: $file $args"
    # shellcheck disable=SC2086
    timeout "$(left 150)" node "$JS/$file" $args > "$OUTDIR/bench-$name.txt" 2>&1 || rc=1
    tail -25 "$OUTDIR/bench-$name.txt"
    ran=$((ran + 1))
  done
  NOTE="$ran of ${#entries[@]} ran"
  return $rc
}

if step environment env_step; then
  if step build build_step; then
    # LITLORA_GPU_CHECK_SKIP: steps to leave out on a short rerun, e.g. "ops bench".
    SKIP=" ${LITLORA_GPU_CHECK_SKIP:-} "
    [[ $SKIP == *" ops "* ]] || step ops ops_step
    step 'op tests' tests_step
    [[ $SKIP == *" bench "* ]] || step bench bench_step
    step 'more benches' extra_step
  fi
fi

{
  echo
  echo "=== litlora gpu-check summary ($DEVICE, $(($(date +%s) - t_start)) s) ==="
  printf '%s\n' "${rows[@]}"
  if [ -s "$OUTDIR/ops.txt" ]; then
    echo "--- ops checks (ops.txt, gpu-check-ops.json) ---"
    grep -hE '^(PASS|FAIL) ' "$OUTDIR/ops.txt" | grep -v '^PASS  smoke: to' | cut -c1-150
  fi
  if [ -s "$OUTDIR/bench-ops.txt" ]; then
    echo "--- bench (bench-ops.txt, last lines) ---"
    tail -15 "$OUTDIR/bench-ops.txt"
  fi
  for f in "$OUTDIR"/bench-*.txt; do
    case $f in */bench-ops.txt) continue ;; esac
    [ -s "$f" ] && { echo "--- $(basename "$f") (last lines) ---"; tail -12 "$f"; }
  done
  echo "result: $([ "$failures" -eq 0 ] && echo ALL PASSED || echo "$failures step(s) FAILED")"
} | tee "$OUTDIR/summary.txt"
[ "$failures" -eq 0 ]
