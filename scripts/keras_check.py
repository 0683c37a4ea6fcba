#!/usr/bin/env python3
"""Check that a model file written by keras-tch loads in real Keras, and compute its outputs.

Run inside the venv of scripts/requirements-keras.txt (the Rust tests call it):

  keras_check.py --model FILE --input X.h5 --output Y.h5 [--loader tf_keras|keras3] [--weights W] [--compile]
  keras_check.py --subclassed resnet18|resnet34 --weights W --input X.h5 --output Y.h5 [--loader …]

Loads FILE without compiling it (with --compile, compiled from the file's own settings, as
load_model does by default):
  tf_keras  tf_keras.models.load_model (a legacy HDF5 .h5 full model); the default for .h5
  keras3    keras.saving.load_model (a .keras archive, or a legacy .h5 through Keras 3's
            legacy reader); the default for .keras, the only loader for it
with --weights, clones the loaded model (fresh weights, Keras's clone_model) and loads W into the
clone with model.load_weights (Keras 3 reads a '.weights.h5' in its own layout, a '.h5' in
tf.keras's). With --subclassed instead of --model, builds the TF2 tutorial's subclassed ResNet18/34
(scripts/keras_fixtures_tutorial.py) in the loader's Keras and loads W into it (the default loader
is keras3 for a '.weights.h5', tf_keras otherwise). Then reads the dataset 'x' of X.h5, writes the dataset 'y' = model.predict(x) (float32) to Y.h5 and
prints one line: 'ok <model.name> <len(model.layers)> <model.count_params()> <optimizer class or None>'.
On any failure it prints 'error: ...' with the exception message on stderr and exits with 1
(2 for bad arguments).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LOADERS = ("tf_keras", "keras3")


def load_model(path: str, loader: str, compile: bool):
    if loader == "tf_keras":
        if path.endswith(".keras"):
            raise ValueError(".keras files are Keras 3 archives: use --loader keras3")
        import tf_keras

        return tf_keras.models.load_model(path, compile=compile)
    import keras

    return keras.saving.load_model(path, compile=compile)


def with_weights(model, weights: str, loader: str):
    """A fresh clone of `model` holding the weights of the file `weights`."""
    if loader == "tf_keras":
        import tf_keras as keras
    else:
        import keras
    clone = keras.models.clone_model(model)
    clone.load_weights(weights)
    return clone


def subclassed_model(arch: str, loader: str):
    """The TF2 tutorial's subclassed ResNet18/34, built in a fresh session of the loader's Keras."""
    import keras_fixtures_tutorial as tutorial

    return tutorial.built_tutorial_resnet(tutorial.keras_module(loader), arch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="the model file (.h5 full model or .keras)")
    source.add_argument("--subclassed", choices=("resnet18", "resnet34"),
                        help="the TF2 tutorial's subclassed model, to load --weights into")
    parser.add_argument("--input", required=True, help="an HDF5 file with the input batch as dataset 'x'")
    parser.add_argument("--output", required=True, help="the HDF5 file to write the outputs to (dataset 'y')")
    parser.add_argument("--weights", help="a weights file to load into a fresh clone of the model")
    parser.add_argument("--compile", action="store_true", help="compile the model from the file's own settings")
    parser.add_argument("--loader", choices=LOADERS,
                        help="the Keras to load with (default: keras3 for .keras, tf_keras otherwise)")
    args = parser.parse_args()
    if args.subclassed and not args.weights:
        parser.error("--subclassed needs --weights")
    keras3_file = (args.model or "").endswith(".keras") or (args.subclassed and args.weights.endswith(".weights.h5"))
    loader = args.loader or ("keras3" if keras3_file else "tf_keras")

    import h5py
    import numpy as np

    try:
        if args.subclassed:
            model = subclassed_model(args.subclassed, loader)
            model.load_weights(args.weights)
        else:
            model = load_model(args.model, loader, args.compile)
            if args.weights:
                model = with_weights(model, args.weights, loader)
    except Exception as error:  # noqa: BLE001  (any failure to load is the answer)
        print(f"error: {loader} cannot load {args.model or args.weights}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    try:
        with h5py.File(args.input, "r") as f:
            x = np.array(f["x"])
        y = model.predict(x, verbose=0)
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(f"the model has {len(y)} outputs; only single-output models are supported")
        with h5py.File(args.output, "w") as f:
            f.create_dataset("y", data=np.asarray(y, dtype="float32"))
    except Exception as error:  # noqa: BLE001
        print(f"error: {args.model or args.weights} loaded with {loader}, but: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    optimizer = type(model.optimizer).__name__ if getattr(model, "optimizer", None) is not None else None
    print(f"ok {model.name} {len(model.layers)} {model.count_params()} {optimizer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
