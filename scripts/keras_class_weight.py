#!/usr/bin/env python3
"""tf.keras's fit with class_weight, for tests/training.rs to compare against.

Run inside the venv of scripts/requirements-keras.txt:

  keras_class_weight.py OUT_DIR

Writes OUT_DIR/initial.h5 (a small compiled classifier: Flatten, Dense(8, relu),
Dense(3, softmax); Adam(0.01); categorical cross-entropy; accuracy) before training, and
OUT_DIR/io.h5 with x, y (one-hot, imbalanced classes), class_weight (by class index), the
History of fit(x, y, batch_size=16, epochs=3, shuffle=False, class_weight=...) as 'loss' and
'accuracy', and 'y_pred', the trained model's predictions on x.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py
import numpy as np


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    labels = np.array([0] * 30 + [1] * 12 + [2] * 6)
    rng.shuffle(labels)
    x = rng.random((len(labels), 6, 6, 3), dtype=np.float32)
    x[..., 0] += labels[:, None, None] * 0.3
    y = np.eye(3, dtype=np.float32)[labels]
    class_weight = {0: 0.5, 1: 1.5, 2: 3.0}

    model = keras.Sequential(
        [keras.Input((6, 6, 3)), keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    model.save(os.path.join(out, "initial.h5"))
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, class_weight=class_weight, verbose=0)
    with h5py.File(os.path.join(out, "io.h5"), "w") as f:
        f["x"], f["y"] = x, y
        f["class_weight"] = np.array([class_weight[c] for c in range(3)], dtype=np.float64)
        f["loss"] = np.array(history.history["loss"], dtype=np.float64)
        f["accuracy"] = np.array(history.history["accuracy"], dtype=np.float64)
        f["y_pred"] = model.predict(x, verbose=0).astype(np.float32)


if __name__ == "__main__":
    main()
