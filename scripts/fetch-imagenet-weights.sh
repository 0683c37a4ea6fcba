#!/usr/bin/env bash
# Download Keras's ResNet50 ImageNet weight files into weights/ and check the md5 that Keras's
# get_file checks. Idempotent: files already there with the right md5 are kept. See weights/README.md.
#
#   scripts/fetch-imagenet-weights.sh [--source fchollet|googleapis|all] [--top-only |
#                                      --notop-only] [--dest DIR] [--from DIR]
#
#   --source fchollet            fchollet/deep-learning-models v0.2 (keras_applications ≤ 1.0.8 resnet50.py):
#                                layers res2a_branch2a, bn_conv1, fc1000  (keras-tch --naming keras-applications)
#   --source googleapis          storage.googleapis.com/tensorflow/keras-applications (tf.keras, Keras 3):
#                                layers conv2_block1_1_conv, conv1_bn  (keras-tch --naming keras)
#   --source all                 both (default)
#   --top-only / --notop-only    only the files with / without the 1000-class classifier
#   --dest DIR                   where to put the files (default: weights/ of this checkout)
#   --from DIR                   copy from a local mirror (a directory laid out like weights/) instead
#                                of downloading
#
# Both sources publish the same file names, so the fchollet files are stored with a `fchollet_`
# prefix. Other base URLs (mirrors): KERAS_TCH_WEIGHTS_BASE_URL_FCHOLLET and
# KERAS_TCH_WEIGHTS_BASE_URL_GOOGLEAPIS (ending in '/', file names as upstream).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FCHOLLET_BASE="${KERAS_TCH_WEIGHTS_BASE_URL_FCHOLLET:-https://github.com/fchollet/deep-learning-models/releases/download/v0.2/}"
GOOGLEAPIS_BASE="${KERAS_TCH_WEIGHTS_BASE_URL_GOOGLEAPIS:-https://storage.googleapis.com/tensorflow/keras-applications/resnet/}"

# source  top|notop  local name  upstream name  md5
# md5s: keras_applications/resnet50.py (≤ 1.0.8) and fchollet/deep-learning-models resnet50.py for
# fchollet; WEIGHTS_HASHES["resnet50"] in tf_keras/keras src/applications/resnet.py for the other.
FILES=(
  "fchollet top fchollet_resnet50_weights_tf_dim_ordering_tf_kernels.h5 resnet50_weights_tf_dim_ordering_tf_kernels.h5 a7b3fe01876f51b976af0dea6bc144eb"
  "fchollet notop fchollet_resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 a268eb855778b3df3c7506639542a6af"
  "googleapis top resnet50_weights_tf_dim_ordering_tf_kernels.h5 resnet50_weights_tf_dim_ordering_tf_kernels.h5 2cb95161c43110f7111970584f804107"
  "googleapis notop resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 4d473c1dd8becc155b73f8504c6f6626"
)

SOURCE=all
TOP=all
DEST="$REPO/weights"
FROM=""
while (($#)); do
  case "$1" in
    --source)
      (($# >= 2)) || { echo "fetch-imagenet-weights.sh: --source needs a value" >&2; exit 2; }
      SOURCE="$2"; shift ;;
    --source=*) SOURCE="${1#*=}" ;;
    --top-only) TOP=top ;;
    --notop-only) TOP=notop ;;
    --dest)
      (($# >= 2)) || { echo "fetch-imagenet-weights.sh: --dest needs a directory" >&2; exit 2; }
      DEST="$2"; shift ;;
    --dest=*) DEST="${1#*=}" ;;
    --from)
      (($# >= 2)) || { echo "fetch-imagenet-weights.sh: --from needs a directory" >&2; exit 2; }
      FROM="$2"; shift ;;
    --from=*) FROM="${1#*=}" ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-imagenet-weights.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$SOURCE" in
  fchollet|googleapis|all) ;;
  *) echo "fetch-imagenet-weights.sh: --source must be fchollet, googleapis or all, not '$SOURCE'" >&2; exit 2 ;;
esac

say() { echo "[weights] $*"; }
die() { echo "[weights] error: $*" >&2; exit 1; }

if command -v md5sum >/dev/null; then
  md5_of() { md5sum "$1" | cut -d' ' -f1; }
elif command -v md5 >/dev/null; then
  md5_of() { md5 -q "$1"; }
else
  die "need md5sum (GNU coreutils) or md5 to check the files"
fi

if [ -n "$FROM" ]; then
  [ -d "$FROM" ] || die "--from $FROM is not a directory"
  FROM="$(cd "$FROM" && pwd)"
elif command -v curl >/dev/null; then
  DOWNLOADER=curl
elif command -v wget >/dev/null; then
  DOWNLOADER=wget
else
  die "need curl or wget to download (or --from DIR to copy from a local mirror)"
fi

mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"

# The partial file lives next to its target (so the final mv is an atomic rename) and ends in
# .h5 (so .gitignore's /weights/*.h5 covers it); it is removed on any exit.
PARTIAL=""
trap 'if [ -n "$PARTIAL" ]; then rm -f "$PARTIAL"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fetch URL OUT: download (or copy, with --from) to OUT; non-zero on failure.
fetch() {
  local url="$1" out="$2"
  if [ -n "$FROM" ]; then
    cp "$url" "$out"
  elif [ "$DOWNLOADER" = curl ]; then
    local progress=(--silent --show-error)
    if [ -t 2 ]; then progress=(--progress-bar); fi
    curl --fail --location --connect-timeout 30 "${progress[@]}" --output "$out" "$url"
  else
    wget --no-verbose --timeout=30 --output-document="$out" "$url"
  fi
}

failed_downloads=()
failed_hashes=()
unreachable=""
for entry in "${FILES[@]}"; do
  read -r source kind name upstream md5 <<<"$entry"
  if [ "$SOURCE" != all ] && [ "$SOURCE" != "$source" ]; then continue; fi
  if [ "$TOP" != all ] && [ "$TOP" != "$kind" ]; then continue; fi
  if [ "$source" = fchollet ]; then base="$FCHOLLET_BASE"; else base="$GOOGLEAPIS_BASE"; fi
  if [ -n "$FROM" ]; then src="$FROM/$name"; else src="$base$upstream"; fi
  target="$DEST/$name"

  if [ -f "$target" ]; then
    actual="$(md5_of "$target")"
    if [ "$actual" = "$md5" ]; then
      say "$name: present, md5 $md5 ok"
      continue
    fi
    say "$name: present but md5 is $actual, not $md5; fetching it again"
  fi

  host="${src#*://}"
  host="${host%%/*}"
  if [ -z "$FROM" ] && [ -n "$host" ] && [[ " $unreachable " == *" $host "* ]]; then
    echo "[weights] error: not trying $src ($host was unreachable above)" >&2
    failed_downloads+=("$base$upstream $name $md5")
    continue
  fi
  say "$name <- $src"
  PARTIAL="$DEST/.partial-$$-$name"
  rm -f "$PARTIAL"
  status=0
  fetch "$src" "$PARTIAL" || status=$?
  if ((status)); then
    rm -f "$PARTIAL"
    PARTIAL=""
    echo "[weights] error: could not get $name from $src" >&2
    failed_downloads+=("$base$upstream $name $md5")
    # curl 6/7/28: host not found, no connection, timeout; wget 4: network failure.
    if [ -z "$FROM" ] && { { [ "$DOWNLOADER" = curl ] && [[ $status =~ ^(6|7|28)$ ]]; } ||
      { [ "$DOWNLOADER" = wget ] && ((status == 4)); }; }; then
      unreachable="$unreachable $host"
    fi
    continue
  fi
  actual="$(md5_of "$PARTIAL")"
  if [ "$actual" != "$md5" ]; then
    rm -f "$PARTIAL"
    PARTIAL=""
    echo "[weights] error: $name from $src has the wrong md5: expected $md5, got $actual (deleted it)" >&2
    failed_hashes+=("$name")
    continue
  fi
  mv -f "$PARTIAL" "$target"
  PARTIAL=""
  say "$name: md5 $md5 ok"
done

if ((${#failed_downloads[@]})); then
  if [ -n "$FROM" ]; then
    echo "[weights] $FROM lacks the file(s) above (a mirror uses the names weights/ uses); upstream:" >&2
  else
    cat >&2 <<EOF
[weights] Download failed (error above): this machine may have no internet access, or cannot reach the host.
[weights] Get each file below on a machine that can (browser, curl -LO URL, or Keras itself, which
[weights] caches them in ~/.keras/models/), copy it to the path shown (note the name: both sources
[weights] use the same one), check it with the md5sum line (it must print OK), and re-run this script.
EOF
  fi
  for line in "${failed_downloads[@]}"; do
    read -r url name md5 <<<"$line"
    echo "    $url" >&2
    echo "      -> $DEST/$name" >&2
    echo "      cd '$DEST' && echo '$md5  $name' | md5sum -c" >&2
  done
fi
if ((${#failed_hashes[@]})); then
  echo "[weights] wrong md5 for: ${failed_hashes[*]}; the source serves a different or damaged file." >&2
fi
if ((${#failed_downloads[@]} + ${#failed_hashes[@]})); then
  exit 1
fi
say "done: files in $DEST"
