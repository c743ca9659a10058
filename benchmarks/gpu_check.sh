#!/usr/bin/env bash
# The GPU checks of issue 9 in ONE device call (see benchmarks/GPU.md for the call itself):
#
#   bash benchmarks/gpu_check.sh [kernels] [train] [bench] [engine] [profile] [cpu]   (default: all, this order)
#
#   setup    always: install the carried wheels (.whl/, Ray), print the card and the versions
#   kernels  pytest tests/gpu: fused kernels, memory stats, CUDA loader,
#            optimizer kernels, NCCL (world size 1 and one rank per GPU), DDP on one GPU
#   train    benchmarks/gpu_train_smoke.py: the digits CNN through a real WorkerGroup on the GPU
#   bench    benchmarks/gpu_compare.py: raygrad / PyTorch eager step times, matmul TFLOP/s, memory
#   engine   pytest tests/tensor --device cuda: every engine test that takes `device`, on cuda
#   profile  benchmarks/gpu_profile.py: kernels, GPU and host time per step of the CNN and transformer
#   cpu      benchmarks/ddp.py and benchmarks/loader.py on the machine's CPU cores (a core per worker,
#            which the 2-core CI machine cannot give them); tables appended to bench.log
#
# Every step has its own timeout, capped by a deadline for the whole script (GPU_CHECK_DEADLINE_S,
# default 540 s) so that the summary and the table always print inside a 600 s device call; a
# failing step is recorded and the next one runs. Logs go to $OUT (8 files): env.txt, pytest.log,
# train.log, bench.log, gpu_compare.md, gpu_compare.json, profile.md, summary.txt. The table prints last.
set -uo pipefail  # no -e: each step's status is recorded, and the later steps still run
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
OUT=${OUT:-${TMPDIR:-/tmp}/raygrad-gpu-check}  # the device tool sets OUT; elsewhere a scratch folder
mkdir -p "$OUT"
START=$(date +%s)
DEADLINE=${GPU_CHECK_DEADLINE_S:-540}
STAGES=("$@")
[ ${#STAGES[@]} -eq 0 ] && STAGES=(kernels train bench engine profile cpu)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

elapsed() { echo $(($(date +%s) - START)); }

# step NAME CAP LOG COMMAND...: run COMMAND under `timeout` (CAP seconds, or less when the deadline
# is nearer), output appended to LOG and shown, status recorded in the summary.
step() {
  local name=$1 cap=$2 log=$3 left rc began
  shift 3
  left=$((DEADLINE - $(elapsed)))
  ((left < cap)) && cap=$left
  if ((cap < 20)); then
    echo "$name: SKIPPED (only ${left}s left before the ${DEADLINE}s deadline)" | tee -a "$SUMMARY"
    return
  fi
  echo "===== $name (timeout ${cap}s, at $(elapsed)s) =====" | tee -a "$log"
  began=$(date +%s)
  timeout -k 10 "$cap" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  local verdict="ok"
  ((rc == 124 || rc == 137)) && verdict="TIMED OUT after ${cap}s"
  ((rc != 0 && rc != 124 && rc != 137)) && verdict="FAILED (exit $rc)"
  echo "$name: $verdict in $(($(date +%s) - began))s" | tee -a "$SUMMARY"
}

# ---------------------------------------------------------------------------------------- setup
{
  echo "===== setup ($(date -u +%FT%TZ)) ====="
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && echo "installed $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site" \
      || echo "WARNING: installing the carried wheels failed: Ray will be missing"
  else
    echo "WARNING: no .whl/ carried (../shared/tools/device-wheels.sh builds it): Ray will be missing"
  fi
} 2>&1 | tee "$OUT/env.txt"
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# CuPy finds NCCL through the pip package nvidia-nccl-*; if it does not, point the loader at it.
if ! python3 -c "from cupy.cuda import nccl; nccl.get_version()" >/dev/null 2>&1; then
  nccl_dir=$(python3 -c "import glob, os, site; print(next((os.path.dirname(p) for b in site.getsitepackages() for p in glob.glob(b + '/nvidia/**/libnccl.so*', recursive=True)), ''))")
  [ -n "$nccl_dir" ] && export LD_LIBRARY_PATH="$nccl_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "cupy.cuda.nccl did not load; LD_LIBRARY_PATH now starts with: ${nccl_dir:-(no libnccl found)}" | tee -a "$OUT/env.txt"
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu \
    --format=csv || echo "nvidia-smi failed"
  python3 - <<'PY'
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
for name in ("numpy", "cupy", "torch", "ray", "pyarrow", "pytest", "xdist", "pytest_timeout"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # report, never stop: the steps say what it breaks
        print(f"{name}: NOT importable ({exc!r})")
try:
    import cupy
    from cupy.cuda import nccl
    print("cuda runtime", cupy.cuda.runtime.runtimeGetVersion(), "driver", cupy.cuda.runtime.driverGetVersion(),
          "devices", cupy.cuda.runtime.getDeviceCount(), "nccl", nccl.get_version())
    import torch
    print("torch cuda", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0))
except Exception as exc:
    print("CUDA stack check failed:", repr(exc))
import tensor
print("raygrad sees CUDA:", tensor.cuda.is_available(), "devices:", tensor.cuda.device_count())
PY
} 2>&1 | tee -a "$OUT/env.txt"

# One xdist worker per core but two (the GPU is shared; the rest keep the host side fed).
XDIST=()
python3 -c "import xdist" 2>/dev/null && XDIST=(-n $(($(nproc) > 4 ? $(nproc) - 2 : 2)))
PYTEST=(python3 -m pytest -q -p no:cacheprovider --timeout 120 -rfE --durations 10)

# ---------------------------------------------------------------------------------------- stages
for stage in "${STAGES[@]}"; do
  case $stage in
    kernels)  # one xdist worker per file: the Ray tests of a file share one local cluster
      step kernels 200 "$OUT/pytest.log" "${PYTEST[@]}" tests/gpu ${XDIST[@]:+-n 4 --dist loadfile} ;;
    train)
      step train 150 "$OUT/train.log" python3 benchmarks/gpu_train_smoke.py
      # A run cut short never reached ray.shutdown(): stop its cluster (Ray's own command) before timing.
      if ! tail -n 1 "$SUMMARY" | grep -q ": ok in" && [ -x /tmp/site/bin/ray ]; then
        timeout 60 /tmp/site/bin/ray stop --force >>"$OUT/train.log" 2>&1
      fi ;;
    bench)
      step bench 200 "$OUT/bench.log" python3 benchmarks/gpu_compare.py --out "$OUT/gpu_compare.md" ;;
    engine)  # ~3700 small tests: spread over workers (first-use kernel compiles dominate); one BLAS
             # thread each, since the ported scripts also run torch on the CPU as their oracle
      step engine 300 "$OUT/pytest.log" env OMP_NUM_THREADS=1 "${PYTEST[@]}" tests/tensor --device cuda "${XDIST[@]}" ;;
    profile)
      step profile 90 "$OUT/profile.md" python3 benchmarks/gpu_profile.py --only cnn transformer ;;
    cpu)
      step cpu 120 "$OUT/bench.log" bash -c "python3 benchmarks/ddp.py --rounds 5 && python3 benchmarks/loader.py" ;;
    *)
      echo "unknown stage '$stage' (kernels, train, bench, engine, profile, cpu)" | tee -a "$SUMMARY" ;;
  esac
done

# ---------------------------------------------------------------------------------------- summary
report() {
  echo
  echo "===== summary after $(elapsed)s ====="
  cat "$SUMMARY"
  grep -E "^(FAILED|ERROR) |[0-9]+ (passed|failed|skipped)|no tests ran" "$OUT/pytest.log" 2>/dev/null | tail -n 40
  grep -E "^(rank |gpu_train_smoke:)" "$OUT/train.log" 2>/dev/null
  [ -f "$OUT/profile.md" ] && sed -n '/^| workload/,$p' "$OUT/profile.md"
  grep -E "^(MLP |[0-9,]+ rows|\| (mode|no comm|ddp|reader|pyarrow|ShardedLoader))" "$OUT/bench.log" 2>/dev/null
  if [ -f "$OUT/gpu_compare.md" ]; then
    sed -n '/^sanity:/,$p' "$OUT/gpu_compare.md"
    echo
    sed -n '/^# /,/^ratio/p' "$OUT/gpu_compare.md"
    echo
    sed -n '/^| item/,/^$/p' "$OUT/gpu_compare.md"  # the table: last
  fi
}
report >"$SUMMARY.new" 2>&1
mv "$SUMMARY.new" "$SUMMARY"
cat "$SUMMARY"
