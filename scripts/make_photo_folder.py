#!/usr/bin/env python3
"""Write a class-per-folder dataset of synthetic JPEG "photos", sized like real ones, to measure
the input pipeline (`keras-tch bench --only folder-epoch --folder DIR`, `train --data DIR`).

Run with the setup venv's python (numpy and Pillow):

  make_photo_folder.py OUT_DIR [--photos 20000] [--classes 10] [--seed 0]

Each photo is 300-500 px on each side (independently, so aspect ratios vary), smooth colour
fields plus fine noise, saved as JPEG at quality 90 (about 40-80 KB each, like camera photos
downsized for the web). Classes differ in their dominant hue, so a model can learn them.
Refuses to write into a non-empty folder. Deterministic for a seed.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image


def photo(rng: np.random.Generator, hue: np.ndarray) -> Image.Image:
    height, width = (int(v) for v in rng.integers(300, 501, size=2))
    # A coarse random field, smoothly enlarged: large soft shapes like a photo's.
    coarse = rng.random((6, 8, 3)) * 0.6 + hue * 0.4
    field = Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(field, dtype=np.int16) + rng.integers(-12, 13, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--photos", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if os.path.exists(args.out_dir) and os.listdir(args.out_dir):
        sys.exit(f"{args.out_dir} is not empty: choose a new folder")
    rng = np.random.default_rng(args.seed)
    hues = rng.random((args.classes, 3))
    for i in range(args.photos):
        label = i % args.classes
        folder = os.path.join(args.out_dir, f"class_{label:02d}")
        os.makedirs(folder, exist_ok=True)
        photo(rng, hues[label]).save(os.path.join(folder, f"photo_{i:06d}.jpg"), quality=90)
        if (i + 1) % 1000 == 0:
            print(f"{i + 1}/{args.photos}", file=sys.stderr)


if __name__ == "__main__":
    main()
