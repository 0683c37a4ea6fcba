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
is keras3 for a '.weights.h5', tf_keras otherwise). Then reads the dataset 'x' of X.h5, writes the dataset 'y' = model.predict(x) (float32; computed as predict does, see predict()) to Y.h5 and
prints one line: 'ok <model.name> <len(model.layers)> <model.count_params()> <optimizer class or None>'.
On any failure it prints 'error: ...' with the exception message on stderr and exits with 1
(2 for bad arguments).

  keras_check.py --serve   answers such checks one per line of stdin (see serve()), so that a
                           test program imports TensorFlow once rather than once per check
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


def predict(model, x, batch_size=32):
    """What `model.predict(x)` returns (batches of 32, inference mode), computed by calling the
    model eagerly: the same operations without tracing a tf.function for each model, which costs
    Keras about a second per check."""
    import numpy as np

    batches = []
    for start in range(0, len(x), batch_size):
        y = model(x[start:start + batch_size], training=False)
        if isinstance(y, (list, tuple, dict)):
            raise ValueError(f"the model has {len(y)} outputs; only single-output models are supported")
        batches.append(np.asarray(y))
    return np.concatenate(batches)


class CheckFailed(Exception):
    """A check's failure, with the message to print ('error: …' or 'bad arguments: …')."""


class Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so that one bad request does not end --serve."""

    def error(self, message):
        raise CheckFailed(f"bad arguments: {message}")


def parse(argv):
    parser = Parser(description=__doc__.splitlines()[0])
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
    args = parser.parse_args(argv)
    if args.subclassed and not args.weights:
        parser.error("--subclassed needs --weights")
    return args


def check(argv) -> str:
    """One check as the module's docstring describes it: returns the 'ok …' line, raises
    CheckFailed otherwise."""
    args = parse(argv)
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
        raise CheckFailed(f"error: {loader} cannot load {args.model or args.weights}: {type(error).__name__}: {error}")
    try:
        with h5py.File(args.input, "r") as f:
            x = np.array(f["x"])
        y = predict(model, x)
        with h5py.File(args.output, "w") as f:
            f.create_dataset("y", data=np.asarray(y, dtype="float32"))
    except Exception as error:  # noqa: BLE001
        raise CheckFailed(f"error: {args.model or args.weights} loaded with {loader}, but: {type(error).__name__}: {error}")
    optimizer = type(model.optimizer).__name__ if getattr(model, "optimizer", None) is not None else None
    return f"ok {model.name} {len(model.layers)} {model.count_params()} {optimizer}"


def fresh_sessions():
    """Both Keras sessions cleared, as in a new process: auto-name counters reset, models freed."""
    if "tf_keras" in sys.modules:
        sys.modules["tf_keras"].backend.clear_session()
    if "keras" in sys.modules:
        sys.modules["keras"].utils.clear_session()


def serve() -> int:
    """Answers checks until stdin ends, importing TensorFlow once (the tests keep one of these per
    test program). A request is one line, the JSON list of a check's arguments; the answer is one
    line on stdout, {"status": 0|1|2, "stdout": …, "stderr": …}, as the check run alone would
    exit and print. Anything else printed goes to stderr, never into the answers."""
    import json
    import traceback

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        fresh_sessions()
        try:
            answer = {"status": 0, "stdout": check(json.loads(line)) + "\n", "stderr": ""}
        except CheckFailed as failure:
            answer = {"status": 2 if str(failure).startswith("bad arguments") else 1, "stdout": "", "stderr": str(failure)}
        except Exception:  # noqa: BLE001  (a bug in a check answers that request, not the others)
            answer = {"status": 1, "stdout": "", "stderr": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        return serve()
    try:
        print(check(sys.argv[1:]))
        return 0
    except CheckFailed as failure:
        print(failure, file=sys.stderr)
        return 2 if str(failure).startswith("bad arguments") else 1


if __name__ == "__main__":
    sys.exit(main())
