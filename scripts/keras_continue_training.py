#!/usr/bin/env python3
"""Continuing training where Keras stopped: the Keras side of tests/optimizer_state.rs.

Run inside the venv of scripts/requirements-keras.txt:

  keras_continue_training.py --shared-data DIR --out OUT [--keras tf_keras|keras3]
  keras_continue_training.py --continue FILE [FILE...] --io IO.h5

For each optimizer below, and for tf.keras and Keras 3 (or the one --keras names), trains the
Happy House model
(keras_fixtures.happy_model) for 2 epochs on the first 96 cat/non-cat training images (/255, batch 32, no shuffle),
saves it with model.save to OUT/<optimizer>/trained.h5 (tf.keras) and trained.keras (Keras 3),
the optimizer's state included, then
continues one more epoch twice from that file: load_model (the optimizer restored, as Keras
resumes) and the same weights compiled afresh (a new optimizer). Writes OUT/io.h5 (x, y: the
training images; x_held, y_held: the 50 test images) and OUT/<optimizer>/continued.json
(tf.keras) and continued_keras3.json:
the step count saved, and for each continuation its epoch's training loss and its loss on
the held-out images after the epoch.

With --continue, loads each FILE (a model keras-tch trained and saved) with load_model — tf.keras's
for a .h5, Keras 3's for a .keras — and continues it one epoch the same way on IO.h5's images;
prints a JSON list with that result per file (its "iterations" being the step count Keras
restored).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_fixtures  # noqa: E402

tf_keras = keras_fixtures.tf_keras

OPTIMIZERS = {
    "adam": lambda keras: keras.optimizers.Adam(learning_rate=0.002),
    "sgd": lambda keras: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    "rmsprop": lambda keras: keras.optimizers.RMSprop(learning_rate=0.001),
}
IMAGES = 96


def read_split(path: str, split: str, count=None):
    with h5py.File(path, "r") as f:
        x = (np.array(f[f"{split}_set_x"][:count]) / 255.0).astype("float32")
        y = np.array(f[f"{split}_set_y"][:count]).reshape(-1, 1).astype("float32")
    return x, y


def continued(model, x, y, x_held, y_held) -> dict:
    history = model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    return {"loss": history.history["loss"][0], "held_loss": model.evaluate(x_held, y_held, batch_size=32, verbose=0)[0]}


def continue_files(paths, io: str) -> int:
    with h5py.File(io, "r") as f:
        x, y, x_held, y_held = (np.array(f[name]) for name in ("x", "y", "x_held", "y_held"))
    results = []
    for path in paths:
        if path.endswith(".keras"):
            import keras as keras3

            model = keras3.models.load_model(path)
        else:
            model = tf_keras.models.load_model(path)
        result = {"iterations": int(model.optimizer.iterations.numpy()), "optimizer": type(model.optimizer).__name__}
        result.update(continued(model, x, y, x_held, y_held))
        results.append(result)
    print(json.dumps(results))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", help="the folder of train_catvnoncat.h5 and test_catvnoncat.h5")
    parser.add_argument("--out")
    parser.add_argument("--keras", choices=("tf_keras", "keras3"), help="train with this Keras only (default: both)")
    parser.add_argument("--continue", dest="continue_paths", nargs="+", help="model files to continue one epoch")
    parser.add_argument("--io", help="with --continue: the io.h5 the training run wrote")
    args = parser.parse_args()
    if args.continue_paths:
        return continue_files(args.continue_paths, args.io)
    if not (args.shared_data and args.out):
        parser.error("--shared-data and --out (or --continue and --io) are required")
    x, y = read_split(os.path.join(args.shared_data, "train_catvnoncat.h5"), "train", IMAGES)
    x_held, y_held = read_split(os.path.join(args.shared_data, "test_catvnoncat.h5"), "test")
    os.makedirs(args.out, exist_ok=True)
    with h5py.File(os.path.join(args.out, "io.h5"), "w") as f:
        for name, value in [("x", x), ("y", y), ("x_held", x_held), ("y_held", y_held)]:
            f.create_dataset(name, data=value)
    import keras as keras3

    for name, optimizer in OPTIMIZERS.items():
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        runs = [("tf_keras", tf_keras, "trained.h5", "continued.json"), ("keras3", keras3, "trained.keras", "continued_keras3.json")]
        for version, keras, file, report in runs:
            if args.keras not in (None, version):
                continue
            keras_fixtures.fresh_session()
            keras3.utils.clear_session()
            keras.utils.set_random_seed(keras_fixtures.SEED)
            model = keras_fixtures.happy_model(keras)
            model.compile(optimizer=optimizer(keras), loss="binary_crossentropy", metrics=["accuracy"])
            model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
            trained = os.path.join(folder, file)
            model.save(trained)
            restored = keras.models.load_model(trained)
            result = {"iterations": int(restored.optimizer.iterations.numpy())}
            result["restored"] = continued(restored, x, y, x_held, y_held)
            fresh = keras.models.load_model(trained, compile=False)
            fresh.compile(optimizer=optimizer(keras), loss="binary_crossentropy", metrics=["accuracy"])
            result["fresh"] = continued(fresh, x, y, x_held, y_held)
            with open(os.path.join(folder, report), "w") as f:
                json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
