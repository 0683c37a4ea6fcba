#!/usr/bin/env bash
# Fuzz the parsers of user files (issue 14): scripts/fuzz.sh TARGET SECONDS [SEED]
#
#   TARGET   h5-weights, h5-model, keras-archive, npy, checkpoint, image, safetensors, or all
#            (all: SECONDS shared equally between the targets, one after the other)
#   SECONDS  fuzzing time, wall clock
#   SEED     first seed (default 1); the same seed makes the same inputs
#
# Runs the `fuzz_campaign` test of tests/fuzz.rs (release build; FUZZ_PROFILE=dev for the
# quicker-to-build test profile) with FUZZ_TARGET / FUZZ_SECONDS / FUZZ_SEED set. Results go to
# target/fuzz/<target>/: crash-<n>.<ext> with crash-<n>.txt (panic message and backtrace),
# slow-<n>.<ext>, hang-<n>.<ext>. The fuzzer writes each input to current-input.<ext> before
# running it, so when the process dies (SIGSEGV, SIGABRT, killed by the watchdog after
# FUZZ_HANG_SECONDS) that file is the reproducer: this script copies it to
# signal-<NAME>-<n>.<ext>, says so, and goes on with the next seed until the time is spent.
#
# Replay one file (prints the library's error, or the panic with its backtrace):
#   FUZZ_REPLAY_TARGET=h5-model FUZZ_REPLAY_FILE=target/fuzz/h5-model/crash-1.h5 \
#     cargo test --test fuzz fuzz_replay -- --ignored --nocapture
# A fixed crash becomes a regression test by copying its file to
# tests/fuzz_support/regressions/<target>/ (replayed by `cargo test --test fuzz`).
#
# Other settings (environment):
#   FUZZ_DIR           instead of target/fuzz; every execution writes files, so a tmpfs
#                      (/dev/shm/keras-tch-fuzz) is much faster when the disk is busy
#   FUZZ_SLOW_SECONDS  report runs slower than this (2)
#   FUZZ_HANG_SECONDS  end the process when a run takes longer than this (10)
#   FUZZ_MEMORY_MB     memory cap above the process's size at start (4096)
#   FUZZ_ERRORS=N      print the N most frequent errors the library answered with
#   FUZZ_RAW=0         HDF5 targets: only well-formed HDF5 files (structural and JSON edits)
set -euo pipefail

TARGETS=(h5-weights h5-model keras-archive npy checkpoint image safetensors)
HANG_EXIT_CODE=70 # tests/fuzz_support/driver.rs: HANG_EXIT_CODE

usage() {
    echo "usage: scripts/fuzz.sh TARGET SECONDS [SEED]" >&2
    echo "  TARGET: ${TARGETS[*]} or all" >&2
    exit 2
}

[[ $# -ge 2 && $# -le 3 ]] || usage
target=$1 seconds=$2 seed=${3:-1}
[[ $seconds =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || usage
if [[ $target == all ]]; then
    selected=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $target "* ]]; then
    selected=("$target")
else
    echo "unknown target '$target'" >&2
    usage
fi

cd "$(dirname "$0")/.."
profile_args=(--release)
[[ ${FUZZ_PROFILE:-release} == dev ]] && profile_args=()

# Build once, then run the test binary itself: its exit status then tells a signal (128 + N)
# from a failed test (101) or a hang (HANG_EXIT_CODE), which `cargo test` would blur.
echo "building the fuzzer (cargo test ${profile_args[*]} --test fuzz --no-run) ..." >&2
binary=$(cargo test "${profile_args[@]}" --test fuzz --no-run --message-format=json \
    | grep '"kind":\["test"\],[^}]*"name":"fuzz"' | grep -o '"executable":"[^"]*"' | sed 's/"executable":"\(.*\)"/\1/')
[[ -x $binary ]] || { echo "could not find the fuzz test binary" >&2; exit 1; }

extension_of() {
    case $1 in
        h5-weights | h5-model) echo h5 ;;
        keras-archive) echo keras ;;
        npy) echo npy ;;
        checkpoint) echo json ;;
        image) echo img ;;
        safetensors) echo safetensors ;;
    esac
}

# Keep a copy of current-input (the next run overwrites it) as signal-<NAME>-<n>.<ext>.
keep_reproducer() {
    local folder=$1 name=$2 ext=$3 n=1
    while [[ -e $folder/signal-$name-$n.$ext ]]; do n=$((n + 1)); done
    cp "$folder/current-input.$ext" "$folder/signal-$name-$n.$ext"
    echo "$folder/signal-$name-$n.$ext"
}

found=0
per_target=$((seconds / ${#selected[@]}))
for name in "${selected[@]}"; do
    folder=${FUZZ_DIR:-target/fuzz}/$name ext=$(extension_of "$name")
    deadline=$((SECONDS + per_target))
    while ((SECONDS < deadline)); do
        status=0
        FUZZ_TARGET=$name FUZZ_SECONDS=$((deadline - SECONDS)) FUZZ_SEED=$seed \
            "$binary" fuzz_campaign --exact --ignored --nocapture --test-threads=1 || status=$?
        if ((status == 0)); then
            break
        elif ((status == 101)); then
            echo "fuzz $name: the run found crashes (panics); see $folder/crash-*.txt" >&2
            found=1
            break
        elif ((status == HANG_EXIT_CODE)); then
            echo "fuzz $name: HANG with seed $seed; the input is kept in $folder/hang-*.$ext" >&2
        elif ((status > 128)); then
            signal=$(kill -l $((status - 128)) 2>/dev/null || echo $((status - 128)))
            kept=$(keep_reproducer "$folder" "$signal" "$ext")
            echo "fuzz $name: CRASH: the process died from SIG$signal with seed $seed;" \
                "the input that killed it is $folder/current-input.$ext, kept as $kept" >&2
        else
            echo "fuzz $name: the fuzzer failed (exit status $status)" >&2
            exit "$status"
        fi
        found=1
        seed=$((seed + 1)) # the same seed would reach the same input again
        echo "fuzz $name: going on with seed $seed ($((deadline - SECONDS)) s left)" >&2
    done
done
exit "$found"
