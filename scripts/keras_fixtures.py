#!/usr/bin/env python3
"""Reference fixtures made by real Keras, for keras-tch's parity tests.

Run by `scripts/setup.sh --fixtures` (the README's test command) inside the venv of
scripts/requirements-keras.txt; the output folder is keyed by this file's hash, so the fixtures
are regenerated exactly when this script (or the pinned Keras) changes.

Each fixture is a folder under --out holding what Keras wrote or computed:
  *.h5 / *.keras  model files saved by Keras itself (tf.keras 2.x = tf_keras, and Keras 3)
  io.h5           inputs and Keras's outputs for them (datasets 'x', 'y', ...), float32
  *.txt           small facts (e.g. Keras's printed summary) for tests that check text

Tests find them through the link tests/keras-fixtures (made by setup.sh).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402  (the Keras 2 API the notebooks were written against)

SEED = 1


def write_io(folder: str, **arrays: np.ndarray) -> None:
    with h5py.File(os.path.join(folder, "io.h5"), "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


def fixture_conv2d_valid(folder: str) -> None:
    """A single tf.keras Conv2D (3x3, stride 1, 'valid', bias) saved with model.save(.h5)."""
    tf_keras.utils.set_random_seed(SEED)
    inputs = tf_keras.Input(shape=(6, 7, 3))
    outputs = tf_keras.layers.Conv2D(4, 3, padding="valid", name="conv")(inputs)
    model = tf_keras.Model(inputs, outputs, name="conv2d_valid")
    # Non-zero bias so a dropped bias would show.
    kernel, bias = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([kernel, np.linspace(-0.5, 0.5, bias.size).astype("float32")])
    x = np.random.default_rng(SEED).standard_normal((2, 6, 7, 3)).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    write_io(folder, x=x, y=model.predict(x, verbose=0))


def fixture_course_signs(folder: str, shared_data: str) -> None:
    """What the notebook's load_dataset()/255 and convert_to_one_hot give for test_signs.h5."""
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        x_orig = np.array(f["test_set_x"])
        y_orig = np.array(f["test_set_y"]).reshape((1, -1))
        classes = np.array(f["list_classes"])
    x = x_orig / 255.0
    y = np.eye(len(classes))[y_orig.reshape(-1)]  # convert_to_one_hot(Y, 6).T
    write_io(folder, per_image_mean=x.reshape(len(x), -1).mean(axis=1).astype("float32"),
             one_hot=y.astype("float32"), shape=np.array(x.shape, dtype="int64"))


FIXTURES = {
    "conv2d_valid": fixture_conv2d_valid,
}
SHARED_DATA_FIXTURES = {
    "course_signs": fixture_course_signs,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the fixtures into")
    parser.add_argument("--shared-data", required=True, help="the course data folder (../shared/data)")
    args = parser.parse_args()

    for name, make in FIXTURES.items():
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        make(folder)
        print(f"fixture {name}")

    if os.path.isdir(args.shared_data):
        for name, make in SHARED_DATA_FIXTURES.items():
            folder = os.path.join(args.out, name)
            os.makedirs(folder, exist_ok=True)
            make(folder, args.shared_data)
            print(f"fixture {name} (from {args.shared_data})")
    elif os.environ.get("CI") == "true":
        print(f"error: the course data folder {args.shared_data} is missing (CI=true)", file=sys.stderr)
        return 1
    else:
        print(f"note: {args.shared_data} is missing; the course-data fixtures are not made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
