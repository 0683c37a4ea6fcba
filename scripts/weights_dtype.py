#!/usr/bin/env python3
"""Copy a Keras HDF5 file with every weight dataset stored in another float type.

Run inside the venv of scripts/requirements-keras.txt (the Rust tests call it):

  weights_dtype.py --input model.h5 --output model_f16.h5 --dtype float16|float64

Every floating-point dataset under `model_weights` (full model) or the file's root (weights
only) is rewritten with numpy's conversion (`astype`); attributes are copied as they are. Keras
itself then loads the copy (tests compare keras-tch's outputs on it with Keras's, through
scripts/keras_check.py): Keras casts such weights to its float32 variables when it loads them.
"""
import argparse

import h5py
import numpy as np


def copy_attrs(source, target) -> None:
    for key, value in source.attrs.items():
        target.attrs[key] = value


def copy_converted(source: h5py.Group, target: h5py.Group, dtype) -> None:
    copy_attrs(source, target)
    for name, item in source.items():
        if isinstance(item, h5py.Group):
            copy_converted(item, target.create_group(name), dtype)
        elif np.issubdtype(item.dtype, np.floating):
            target.create_dataset(name, data=item[()].astype(dtype))
            copy_attrs(item, target[name])
        else:
            source.copy(item, target, name=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--dtype", required=True, choices=["float16", "float64"])
    args = parser.parse_args()
    with h5py.File(args.input, "r") as source, h5py.File(args.output, "w") as target:
        copy_converted(source, target, np.dtype(args.dtype))
    print("ok", args.output)


if __name__ == "__main__":
    main()
