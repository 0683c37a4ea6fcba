#!/usr/bin/env bash
# Side-by-side benchmark: keras-tch against Keras (tf_keras 2.21, TensorFlow CPU), PyTorch
# eager (torch 2.13.0, the wheel libtorch comes from), and for inference ONNX Runtime and
# PyTorch inductor, on the same workloads and shapes, in interleaved rounds on this machine;
# prints the table of medians and ratios and writes it to BENCHMARKS.md.
#
#   scripts/bench-compare.sh [--rounds 3] [--repeats 5] [--skip-torch]
#
# Needs `scripts/setup.sh --fixtures` (the Keras venv). PyTorch, ONNX Runtime and onnx go into
# their own venv in the cache ($KERAS_TCH_CACHE/venv-bench) from PyPI, the first time (several
# GB with PyTorch's CUDA libraries, which the CPU run does not use).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KERAS_TCH_CACHE:-$HOME/.cache/keras-tch}"
ROUNDS=3 REPEATS=5 WITH_TORCH=1
while (($#)); do
  case "$1" in
    --rounds) ROUNDS="$2"; shift ;;
    --repeats) REPEATS="$2"; shift ;;
    --skip-torch) WITH_TORCH=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench-compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "[bench] $*" >&2; }

KERAS_PY="$CACHE/venv/bin/python"
if ! { [ -x "$KERAS_PY" ] && "$KERAS_PY" -c "import tf_keras" 2>/dev/null; }; then
  echo "[bench] error: the Keras venv is missing: run scripts/setup.sh --fixtures first" >&2
  exit 1
fi
if ((WITH_TORCH)); then
  TORCH_PY="$CACHE/venv-bench/bin/python"
  if ! [ -x "$TORCH_PY" ] || ! "$TORCH_PY" -c "import torch, onnx, onnxruntime" 2>/dev/null; then
    say "installing torch==2.13.0, onnxruntime and onnx into $CACHE/venv-bench (PyPI)"
    python3 -m venv "$CACHE/venv-bench"
    "$CACHE/venv-bench/bin/pip" install -q torch==2.13.0 numpy==2.4.6 onnxruntime==1.32.0 onnx==1.23.2
  fi
fi

say "building keras-tch (release)"
(cd "$REPO" && cargo build --release -q)
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS: keras-tch"
  "$REPO/target/release/keras-tch" bench --json --repeats "$REPEATS" > "$OUT/keras-tch-$round.json"
  say "round $round/$ROUNDS: keras-tch --precision bf16"
  for workload in course-train-step course-predict imagenet-predict; do
    "$REPO/target/release/keras-tch" bench --only "$workload" --precision bf16 --repeats "$REPEATS"
  done | python3 -c 'import json, sys; merged = {}; [merged.update(json.loads(line)) for line in sys.stdin]; print(json.dumps(merged))' \
    > "$OUT/keras-tch-$round-bf16.json"
  say "round $round/$ROUNDS: Keras"
  TF_CPP_MIN_LOG_LEVEL=3 "$KERAS_PY" "$REPO/scripts/bench_peers.py" --framework keras --repeats "$REPEATS" > "$OUT/keras-$round.json"
  if ((WITH_TORCH)); then
    say "round $round/$ROUNDS: PyTorch"
    "$TORCH_PY" "$REPO/scripts/bench_peers.py" --framework torch --repeats "$REPEATS" > "$OUT/torch-$round.json"
    say "round $round/$ROUNDS: ONNX Runtime"
    "$TORCH_PY" "$REPO/scripts/bench_peers.py" --framework ort --repeats "$REPEATS" > "$OUT/ort-$round.json"
    say "round $round/$ROUNDS: PyTorch inductor"
    "$TORCH_PY" "$REPO/scripts/bench_peers.py" --framework inductor --repeats "$REPEATS" > "$OUT/inductor-$round.json"
  fi
done
python3 "$REPO/scripts/bench_table.py" "$OUT" --write "$REPO/BENCHMARKS.md"
