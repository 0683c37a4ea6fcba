#!/usr/bin/env bash
# Where the time of one benchmark workload goes: samples `keras-tch bench --only WORKLOAD` with
# Linux perf and sums the samples by kind of work (oneDNN convolution kernels, the optimizer's
# elementwise passes, BatchNorm, copies, OpenMP waiting, page faults, ...).
#
#   scripts/profile.sh course-train-step [--precision bf16] [--repeats 20]
#
# Needs `perf` (Debian: apt-get install linux-perf) and permission to sample
# (/proc/sys/kernel/perf_event_paranoid ≤ 2, or root). The percentages include the workload's
# setup (model construction, warm-up), which more repeats dilute.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if (($# < 1)) || [[ "$1" == -h || "$1" == --help ]]; then
  sed -n '2,11p' "$0"
  exit 0
fi
WORKLOAD="$1"; shift
if ! command -v perf >/dev/null; then
  echo "profile.sh: perf is not installed (Debian: apt-get install linux-perf)" >&2
  exit 1
fi
(cd "$REPO" && cargo build --release -q)
DATA="$(mktemp -d)"
trap 'rm -rf "$DATA"' EXIT
perf record -q -F 499 -o "$DATA/perf.data" "$REPO/target/release/keras-tch" bench --only "$WORKLOAD" --repeats 20 "$@" >/dev/null
perf report -i "$DATA/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | python3 "$REPO/scripts/profile_categories.py"
