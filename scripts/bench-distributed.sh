#!/usr/bin/env bash
# One training epoch of the course ResNet50 as one process with 2 threads against 2
# data-parallel processes with 1 thread each (the way torchrun runs them; here launched with
# torchrun's variables directly, rank 0 hosting the store), interleaved over ROUNDS rounds;
# prints each time and the medians.
#
#   scripts/bench-distributed.sh [--data FILE.h5] [--rounds N] [--limit N] [--batch-size B]
#
# Default data: ../shared/data/train_catvnoncat.h5 (209 photos, 64×64). Memory grows with the
# data: run it under ../shared/tools/capped on a shared machine.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DATA="$REPO/../shared/data/train_catvnoncat.h5"
ROUNDS=3
LIMIT=""
BATCH=32
while (($#)); do
  case "$1" in
    --data) DATA="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --limit) LIMIT="--limit $2"; shift ;;
    --batch-size) BATCH="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$DATA" ] || { echo "no data file $DATA (--data FILE.h5)" >&2; exit 1; }

(cd "$REPO" && cargo build --release -q)
BIN="$REPO/target/release/keras-tch"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# shellcheck disable=SC2086  # LIMIT is empty or two words
train_args() { echo train --arch resnet50-course --epochs 1 --batch-size "$BATCH" --verbose 0 --device cpu $LIMIT --data "$DATA" --root "$WORK/$1" --save "$WORK/$1/model.h5" --checkpoint-dir "$WORK/$1/checkpoints"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

one_process() {
  local start; start=$(now)
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=2 "$BIN" $(train_args single) > /dev/null
  echo "$(now) - $start" | bc
}

two_processes() {
  local start port pids=() status=0; start=$(now); port=$(free_port)
  for rank in 0 1; do
    # shellcheck disable=SC2046
    RANK=$rank LOCAL_RANK=$rank WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port OMP_NUM_THREADS=1 \
      "$BIN" $(train_args parallel) > /dev/null &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  ((status == 0)) || { echo "a rank failed (status $status)" >&2; exit 1; }
  echo "$(now) - $start" | bc
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: > "$WORK/one"; : > "$WORK/two"
for round in $(seq "$ROUNDS"); do
  t1=$(one_process); echo "$t1" >> "$WORK/one"
  t2=$(two_processes); echo "$t2" >> "$WORK/two"
  printf 'round %s: 1 process x 2 threads %.1f s; 2 processes x 1 thread %.1f s\n' "$round" "$t1" "$t2"
done
m1=$(median < "$WORK/one"); m2=$(median < "$WORK/two")
printf 'median (end to end, process start to exit): 1 process x 2 threads %.1f s; 2 processes x 1 thread %.1f s; ratio %.2f\n' \
  "$m1" "$m2" "$(echo "$m2 / $m1" | bc -l)"
