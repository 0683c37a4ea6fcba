#!/usr/bin/env python3
"""Which files Keras's image_dataset_from_directory puts in the training and validation subsets.

Run inside the venv of scripts/requirements-keras.txt (the Rust tests call it):

  keras_dataset_split.py DIR FRACTION SEED [FRACTION SEED ...]

For each FRACTION SEED pair, calls image_dataset_from_directory(DIR, validation_split=FRACTION,
subset="both", seed=SEED) of both Keras 3 (`keras`) and tf.keras (`tf_keras`), and prints a JSON
list with one object per pair, in their order (one process for all: TensorFlow imports slowly):
{"class_names": [...], "keras3": {"training": [paths], "validation": [paths]}, "tf_keras": {...}}
"""
import contextlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def split(utils, directory: str, fraction: float, seed: int):
    training, validation = utils.image_dataset_from_directory(
        directory, validation_split=fraction, subset="both", seed=seed, image_size=(8, 8)
    )
    return training.class_names, {"training": list(training.file_paths), "validation": list(validation.file_paths)}


def main() -> None:
    if len(sys.argv) < 4 or len(sys.argv) % 2 != 0:
        sys.exit(__doc__)
    directory, pairs = sys.argv[1], sys.argv[2:]
    import keras
    import tf_keras

    splits = []
    for fraction, seed in zip(map(float, pairs[0::2]), map(int, pairs[1::2])):
        # Keras prints "Found N files belonging to C classes." on stdout: keep stdout for the JSON.
        with contextlib.redirect_stdout(sys.stderr):
            class_names, keras3 = split(keras.utils, directory, fraction, seed)
            _, legacy = split(tf_keras.utils, directory, fraction, seed)
        splits.append({"class_names": class_names, "keras3": keras3, "tf_keras": legacy})
    print(json.dumps(splits))


if __name__ == "__main__":
    main()
