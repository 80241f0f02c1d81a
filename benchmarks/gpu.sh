#!/usr/bin/env bash
# GPU benchmarks in one short, prepared run (about 5 minutes), for a lent machine without
# internet access (the H200 machine: its python3 has JAX with CUDA, flax, optax, orbax, pandas,
# pyarrow, scikit-learn; it lacks ml_collections, and pip cannot reach a package index there).
#
# Prepare here, once (both folders are git-ignored and travel only when carried):
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     ml_collections==1.1.0 flax==0.12.8 optax==0.2.8 orbax-checkpoint==0.12.8 implicit==0.7.3
#   mkdir -p data/hybridrec && cp -r ~/.cache/hybridrec/movielens-100k data/hybridrec/
# Run there, from the repository root (device tool: command "bash benchmarks/gpu.sh",
# carry [".whl", "data"], timeout_s 420):
#   bash benchmarks/gpu.sh
# Everything is written to $OUT (default ./gpu_out): env.txt, scale_medium*.{txt,json},
# train.txt, sampling.txt. A wheel is installed only when the machine's own package is missing
# or outside hybridrec's pinned range, into /tmp/site (PYTHONPATH), never over the image.
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-300}  # seconds for the whole script; later steps are skipped past it
export PYTHONUNBUFFERED=1 HYBRIDREC_NO_DOWNLOAD=1 OPENBLAS_NUM_THREADS=1
# The benchmarks' parent processes initialise JAX too; without this the first process to start
# would hold 75% of the GPU's memory while its subprocesses run.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -d data/hybridrec ] && export HYBRIDREC_DATA="$PWD/data/hybridrec"

# ---- install what is missing, from carried wheels
if [ -d .whl ]; then
  want=$("$PY" - <<'EOF'
import importlib.metadata as md
# (distribution, wheel file prefix, acceptable version prefixes; empty: any)
needs = [("ml_collections", "ml_collections-", ()), ("flax", "flax-", ("0.12.",)),
         ("optax", "optax-", ("0.2.",)), ("orbax-checkpoint", "orbax_checkpoint-", ()),
         ("implicit", "implicit-", ())]
for dist, prefix, ok in needs:
    try:
        version = md.version(dist)
    except md.PackageNotFoundError:
        version = None
    if version is None or (ok and not version.startswith(ok)):
        print(prefix)
EOF
)
  for prefix in $want; do  # one at a time: a wheel that does not fit stops only itself
    for f in .whl/"$prefix"*.whl; do
      echo "installing $f"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$f" || echo "could not install $f"
    done
  done
fi

# ---- the machine
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  nproc
  "$PY" - <<'EOF'
import importlib.metadata as md
import jax
print("jax.devices():", jax.devices())
for dist in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml_collections", "numpy",
             "pandas", "pyarrow", "implicit"):
    try:
        print(f"{dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"{dist} missing")
EOF
} 2>&1 | tee "$OUT/env.txt"

step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a timeout if the budget allows
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "== $name: skipped, $left s of the budget left" | tee -a "$OUT/skipped.txt"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit $limit s, at $SECONDS s)"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]} at $SECONDS s"
}

# 1. The medium shape as shipped (batch 1024), beside implicit on 2 threads, 3 epochs.
step scale_medium 150 "$PY" benchmarks/bench_scale.py --shape medium --epochs 3 \
  --systems hybridrec,implicit --json-out "$OUT/scale_medium.json"
# 2. The training loop's cases (MovieLens 100K when data/ was carried; synthetic 1M x 100k).
step train 120 "$PY" benchmarks/bench_train.py --synthetic-interactions 2000000
# 3. Throughput with a GPU-sized batch (hybridrec alone; the learning rate as shipped).
step scale_medium_b16k 80 "$PY" benchmarks/bench_scale.py --shape medium --epochs 3 \
  --systems hybridrec --override '{"train.batch_size": 16384}' \
  --json-out "$OUT/scale_medium_b16k.json"
# 4. The samplers alone.
step sampling 45 "$PY" benchmarks/bench_sampling.py
echo "done in $SECONDS s; results in $OUT"
