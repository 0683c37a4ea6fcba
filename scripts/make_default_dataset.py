#!/usr/bin/env python3
"""Build keras-tch's default dataset: real handwritten digits in the course's SIGNS layout.

The course's SIGNS training set (hand signs for the digits 0-5, 64x64 RGB) is not available
here, so the demo and the notebook ports fall back to a real dataset that a package registry
ships: the 1,797 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", the
copy inside the scikit-learn wheel at sklearn/datasets/data/digits.csv.gz). We keep the digits
0-5 (six classes, like SIGNS), scale 0..16 to 0..255, upsample 8x8 -> 64x64 bilinearly,
replicate to 3 channels, and hold out 20 images per class as the test set (120, like SIGNS).

Output (course layout, as in train_signs.h5 / test_signs.h5):
  train_digits.h5: train_set_x uint8 (N,64,64,3), train_set_y int64 (N,), list_classes int64 (6,)
  test_digits.h5:  test_set_x, test_set_y, list_classes

Usage: make_default_dataset.py SCIKIT_LEARN_WHEEL OUT_DIR
"""
import gzip
import io
import os
import sys
import zipfile

import h5py
import numpy as np

CLASSES = np.arange(6, dtype=np.int64)
TEST_PER_CLASS = 20
SIDE = 64
SPLIT_SEED = 0


def read_digits(wheel_path: str) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel_path) as wheel:
        raw = gzip.decompress(wheel.read("sklearn/datasets/data/digits.csv.gz"))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float64)
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of half-pixel-centred bilinear resampling (edge-clamped)."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    weights = np.zeros((n_out, n_in))
    weights[np.arange(n_out), lo] += 1 - frac
    weights[np.arange(n_out), hi] += frac
    return weights


def to_images(digits: np.ndarray) -> np.ndarray:
    up = bilinear_matrix(8, SIDE)
    scaled = np.einsum("ij,njk,lk->nil", up, digits * (255.0 / 16.0), up)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def write_split(path: str, prefix: str, x: np.ndarray, y: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset(f"{prefix}_set_x", data=x)
        f.create_dataset(f"{prefix}_set_y", data=y)
        f.create_dataset("list_classes", data=CLASSES)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel_path, out_dir = sys.argv[1:]
    digits, labels = read_digits(wheel_path)
    keep = np.isin(labels, CLASSES)
    images, labels = to_images(digits[keep]), labels[keep]

    rng = np.random.default_rng(SPLIT_SEED)
    test_idx = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:TEST_PER_CLASS] for c in CLASSES])
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[test_idx] = True
    train_order = rng.permutation(np.flatnonzero(~test_mask))
    test_order = rng.permutation(test_idx)

    write_split(os.path.join(out_dir, "train_digits.h5"), "train",
                images[train_order], labels[train_order])
    write_split(os.path.join(out_dir, "test_digits.h5"), "test",
                images[test_order], labels[test_order])
    print(f"default dataset: {len(train_order)} training and {len(test_order)} test images "
          f"of the digits 0-5, 64x64x3, in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
