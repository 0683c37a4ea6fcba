#!/usr/bin/env python3
"""What Keras's callbacks and learning-rate schedules do on scripted sequences of epoch logs.

Run inside the venv of scripts/requirements-keras.txt (tests/callbacks.rs calls it):

  keras_callbacks.py

For each scenario below, drives the callback as `fit` does (set_model, on_train_begin, then per
epoch on_epoch_begin / on_epoch_end with the scripted logs, until model.stop_training, then
on_train_end) in both Keras 3 (`keras`) and tf.keras (`tf_keras`), with a one-weight model whose
weight is set to epoch + 1 before each epoch ends, and records: how many epochs ran, which
epoch's weight the model ends with (-1: the initial one), the learning rate after each epoch,
and the files ModelCheckpoint wrote after each epoch. Then evaluates each schedule at steps
0..140. Prints one JSON object {"scenarios": [...], "schedules": [...]}.
"""
import contextlib
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VAL_LOSS = [1.0, 0.8, 0.795, 0.85, 0.7, 0.71, 0.72, 0.69, 0.75, 0.76, 0.77, 0.78]
VAL_ACCURACY = [0.5, 0.55, 0.52, 0.58, 0.61, 0.6, 0.59, 0.64, 0.63, 0.62, 0.62, 0.61]
LOSS = [2.0, 1.5, 1.2, 1.1, 1.05, 1.06, 1.04, 1.07, 1.08, 1.09, 1.1, 1.2]


def logs(epochs=len(VAL_LOSS)):
    return [
        {"loss": LOSS[e], "accuracy": 1 - LOSS[e] / 3, "val_loss": VAL_LOSS[e], "val_accuracy": VAL_ACCURACY[e]}
        for e in range(epochs)
    ]


SCENARIOS = [
    {"class": "EarlyStopping", "args": {"monitor": "val_loss", "patience": 2, "min_delta": 0.01, "restore_best_weights": True}},
    {"class": "EarlyStopping", "args": {"monitor": "val_accuracy", "mode": "max", "patience": 1, "baseline": 0.6, "restore_best_weights": True}},
    {"class": "EarlyStopping", "args": {"monitor": "loss", "patience": 2, "start_from_epoch": 3, "restore_best_weights": True}},
    {"class": "EarlyStopping", "args": {}},
    {"class": "EarlyStopping", "args": {"monitor": "val_loss", "patience": 3, "baseline": 0.5, "restore_best_weights": True}},
    {"class": "ReduceLROnPlateau", "args": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 2e-4}},
    {"class": "ReduceLROnPlateau", "args": {"monitor": "val_accuracy", "mode": "max", "factor": 0.2, "patience": 2, "min_delta": 0.01}},
    {"class": "ReduceLROnPlateau", "args": {"monitor": "loss", "factor": 0.3, "patience": 0}},
    {"class": "ModelCheckpoint", "args": {"filepath": "w.{epoch:02d}-{val_loss:.2f}", "save_best_only": True}},
    {"class": "ModelCheckpoint", "args": {"filepath": "w.{epoch:03d}-{loss:.3f}"}},
    {"class": "ModelCheckpoint", "args": {"filepath": "best-{val_accuracy:.4f}", "monitor": "val_accuracy", "mode": "max",
                                          "save_best_only": True, "initial_value_threshold": 0.56}},
]

SCHEDULES = [
    {"class": "CosineDecay", "args": {"initial_learning_rate": 0.1, "decay_steps": 100, "alpha": 0.1, "warmup_target": 0.5, "warmup_steps": 20}},
    {"class": "CosineDecay", "args": {"initial_learning_rate": 0.05, "decay_steps": 50}},
    {"class": "CosineDecay", "args": {"initial_learning_rate": 0.0, "decay_steps": 30, "warmup_target": 0.01, "warmup_steps": 7}},
    {"class": "ExponentialDecay", "args": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9}},
    {"class": "ExponentialDecay", "args": {"initial_learning_rate": 0.1, "decay_steps": 7, "decay_rate": 0.5, "staircase": True}},
    {"class": "PiecewiseConstantDecay", "args": {"boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}},
]

LEARNING_RATE = 1e-3


def drive(keras_module, scenario, folder):
    import numpy as np

    K = keras_module
    model = K.Sequential([K.Input((1,)), K.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=K.optimizers.Adam(LEARNING_RATE), loss="mse")
    model.layers[0].kernel.assign(np.zeros((1, 1), dtype="float32"))
    args = dict(scenario["args"])
    if scenario["class"] == "ModelCheckpoint":
        extension = ".weights.h5" if K.__name__ == "keras" else ".h5"
        args["filepath"] = os.path.join(folder, args["filepath"] + extension)
        args["save_weights_only"] = True
    callback = getattr(K.callbacks, scenario["class"])(**args)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin({})
    learning_rates, saved = [], []
    epochs_run = 0
    for epoch, epoch_logs in enumerate(logs()):
        callback.on_epoch_begin(epoch, {})
        model.layers[0].kernel.assign(np.full((1, 1), epoch + 1, dtype="float32"))
        callback.on_epoch_end(epoch, dict(epoch_logs))
        epochs_run = epoch + 1
        learning_rates.append(float(np.array(model.optimizer.learning_rate)))
        saved.append(sorted(os.listdir(folder)))
        if model.stop_training:
            break
    callback.on_train_end({})
    weights_epoch = int(round(float(np.array(model.layers[0].kernel)[0, 0]))) - 1
    return {"epochs_run": epochs_run, "weights_epoch": weights_epoch, "learning_rates": learning_rates, "saved": saved}


def schedule_rates(keras_module, schedule):
    schedules = keras_module.optimizers.schedules
    instance = getattr(schedules, schedule["class"])(**schedule["args"])
    return [float(instance(step)) for step in range(141)]


def main() -> None:
    import keras
    import tf_keras

    results = {"learning_rate": LEARNING_RATE, "logs": logs(), "scenarios": [], "schedules": []}
    with contextlib.redirect_stdout(sys.stderr):
        for scenario in SCENARIOS:
            entry = dict(scenario)
            for module in (keras, tf_keras):
                with tempfile.TemporaryDirectory() as folder:
                    entry[module.__name__] = drive(module, scenario, folder)
            results["scenarios"].append(entry)
        for schedule in SCHEDULES:
            entry = dict(schedule)
            for module in (keras, tf_keras):
                entry[module.__name__] = schedule_rates(module, schedule)
            results["schedules"].append(entry)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
