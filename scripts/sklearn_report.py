#!/usr/bin/env python3
"""scikit-learn's evaluation report for given scores, for tests/report.rs to compare against.

Run inside the setup venv (scripts/requirements-sklearn.txt):

  sklearn_report.py IN.json

IN.json: {"y_true": [class index per sample], "y_score": [[score per class] per sample],
"target_names": [...], "k": [k, ...]}. Prints one JSON object: "text" (classification_report
with digits=2), "dict" (the same with output_dict=True), "confusion" (confusion_matrix) and
"top_k" ({k: top_k_accuracy_score}), all over labels 0..classes-1 with zero_division=0, the
predictions being the argmax of the scores; and "balanced" ({class: weight} of
compute_class_weight("balanced") over the classes present in y_true).
"""
import json
import sys

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, top_k_accuracy_score
from sklearn.utils.class_weight import compute_class_weight


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        given = json.load(f)
    y_true = np.array(given["y_true"])
    y_score = np.array(given["y_score"], dtype=np.float64)
    names = given["target_names"]
    labels = list(range(len(names)))
    y_pred = np.argmax(y_score, axis=1)
    present = np.unique(y_true)
    balanced = compute_class_weight("balanced", classes=present, y=y_true)
    common = dict(labels=labels, target_names=names, zero_division=0)
    print(json.dumps({
        "text": classification_report(y_true, y_pred, digits=2, **common),
        "dict": classification_report(y_true, y_pred, output_dict=True, **common),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "top_k": {str(k): float(top_k_accuracy_score(y_true, y_score, k=k, labels=labels)) for k in given["k"]},
        "balanced": {str(int(c)): float(w) for c, w in zip(present, balanced)},
    }))


if __name__ == "__main__":
    main()
