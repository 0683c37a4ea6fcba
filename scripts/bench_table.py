#!/usr/bin/env python3
"""Summarise scripts/bench-compare.sh's rounds: the median over rounds of each framework's
per-round medians, the ratios keras-tch / Keras and keras-tch / the best peer of the row (in time:
below 1 means keras-tch is faster; for img/s rows the ratio is inverted so that holds too),
printed and written as BENCHMARKS.md with the machine and the date."""
import argparse
import datetime
import json
import os
import re
import statistics

ROWS = [
    ("course ResNet50 train step, batch 32, 64×64", "course_train_step_b32_s", "s"),
    ("course ResNet50 predict, batch 32", "course_predict_b32_s", "s"),
    ("ImageNet ResNet50 predict, batch 1, 224×224", "imagenet_predict_b1_img_per_s", "img/s"),
    ("ImageNet ResNet50 predict, batch 8, 224×224", "imagenet_predict_b8_img_per_s", "img/s"),
    ("HappyModel epoch, 600 images, batch 16", "happy_epoch_600_b16_s", "s"),
    ("bf16: course ResNet50 train step, batch 32", "course_train_step_b32_s_bf16", "s"),
    ("bf16: course ResNet50 predict, batch 32", "course_predict_b32_s_bf16", "s"),
    ("bf16: ImageNet ResNet50 predict, batch 1", "imagenet_predict_b1_img_per_s_bf16", "img/s"),
    ("bf16: ImageNet ResNet50 predict, batch 8", "imagenet_predict_b8_img_per_s_bf16", "img/s"),
]


# The peers' columns: (heading, the framework name in the rounds' file names).
PEERS = [
    ("Keras 2.21", "keras"),
    ("PyTorch 2.13 eager", "torch"),
    ("ONNX Runtime", "ort"),
    ("PyTorch inductor", "inductor"),
]


def load(folder, framework):
    """One dict per round; a round may be split over several files (`keras-tch-1.json`,
    `keras-tch-1-bf16.json`), merged here. The name must be the framework then the round
    number, so `keras-…` never picks up `keras-tch-…`."""
    pattern = re.compile(re.escape(framework) + r"-(\d+)(-[a-z0-9]+)?\.json")
    rounds = {}
    for name in sorted(os.listdir(folder)):
        match = pattern.fullmatch(name)
        if match:
            rounds.setdefault(int(match.group(1)), {}).update(json.load(open(os.path.join(folder, name))))
    return [rounds[r] for r in sorted(rounds)]


def median_of(rounds, key):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(ours, theirs, unit):
    if ours is None or theirs is None:
        return "—"
    # As a time ratio: < 1 means keras-tch takes less time.
    return f"{(theirs / ours) if unit == 'img/s' else (ours / theirs):.2f}"


# The inference rows' achieved GFLOP/s (keras-tch's own report), against the measured matmul
# ceiling of their precision.
GFLOPS_ROWS = [
    ("course ResNet50 predict, batch 32, 64×64", "course_predict_gflops"),
    ("ImageNet ResNet50 predict, batch 1", "imagenet_predict_b1_gflops"),
    ("ImageNet ResNet50 predict, batch 8", "imagenet_predict_b8_gflops"),
]


def gflops_table(ours):
    """keras-tch's GFLOP/s on each inference row, float32 and bf16, as a share of a 4096³
    matmul's in the same precision (the most a convolution network's arithmetic can expect)."""
    ceilings = {"float32": median_of(ours, "matmul_4096_gflops"), "bf16": median_of(ours, "matmul_4096_gflops_bf16")}
    cell = lambda value, ceiling: "—" if value is None or ceiling is None else f"{value:.0f} ({100 * value / ceiling:.0f}%)"
    fmt_ceiling = lambda v: "—" if v is None else f"{v:.0f}"
    lines = [
        f"Achieved GFLOP/s (forward FLOPs × images / time; share of a 4096³ matmul's: {fmt_ceiling(ceilings['float32'])} GFLOP/s "
        f"in float32, {fmt_ceiling(ceilings['bf16'])} in bf16, measured in the same runs):",
        "",
        "| inference row | keras-tch float32 | keras-tch bf16 |",
        "|---|---|---|",
    ]
    for label, key in GFLOPS_ROWS:
        fp32, bf16 = median_of(ours, key), median_of(ours, key + "_bf16")
        lines.append(f"| {label} | {cell(fp32, ceilings['float32'])} | {cell(bf16, ceilings['bf16'])} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--write", help="write the table to this Markdown file")
    args = parser.parse_args()
    ours = load(args.folder, "keras-tch")
    peers = [(name, load(args.folder, framework)) for name, framework in PEERS]
    fmt = lambda v, unit: "—" if v is None else (f"{v:.3f} s" if unit == "s" else f"{v:.1f} img/s")
    names = [name for name, _ in peers]
    lines = [
        f"| workload | keras-tch | {' | '.join(names)} | keras-tch / Keras | keras-tch / best peer |",
        "|---|---|" + "---|" * len(peers) + "---|---|",
    ]
    faster = lambda unit: max if unit == "img/s" else min
    for label, key, unit in ROWS:
        o = median_of(ours, key)
        values = [median_of(rounds, key) for _, rounds in peers]
        # A bf16 row's best peer is each peer at its best precision: bf16, or float32 where
        # that is faster (ONNX Runtime's CPU kernels, for one, have no bf16 convolutions).
        candidates = [(v, name) for v, name in zip(values, names) if v is not None]
        if key.endswith("_bf16"):
            fp32 = [median_of(rounds, key[: -len("_bf16")]) for _, rounds in peers]
            candidates += [(v, f"{name}, float32") for v, name in zip(fp32, names) if v is not None]
        best, best_name = faster(unit)(candidates, key=lambda c: c[0]) if candidates else (None, "")
        cells = " | ".join(fmt(v, unit) for v in values)
        lines.append(f"| {label} | {fmt(o, unit)} | {cells} | {ratio(o, values[0], unit)} | {ratio(o, best, unit)} ({best_name}) |")
    lines += ["", *gflops_table(ours)]
    extra = ours[0] if ours else {}
    header = [
        "# Benchmarks",
        "",
        f"Measured {datetime.date.today().isoformat()} by `scripts/bench-compare.sh` ({len(ours)} interleaved rounds, "
        "each the median of its repeats after warm-up; the table shows the median over rounds).",
        f"Machine: {extra.get('machine', '?')}, {extra.get('threads', '?')} threads, device {extra.get('device', '?')}; "
        f"fp32 peak {extra.get('fp32_peak_gflops', float('nan')):.0f} GFLOP/s "
        f"({extra.get('fp32_peak_formula', 'cores × clock × 16 lanes × 2 × 2 FMA units, assumed')}), a 4096³ matmul reaches {median_of(ours, 'matmul_4096_gflops') or float('nan'):.0f} GFLOP/s (median of the rounds).",
        "Ratios are time ratios: below 1.00 means keras-tch takes less time (for img/s rows, the inverse of the throughput ratio).",
        "bf16 rows: keras-tch `--precision bf16` against PyTorch's `torch.autocast(\"cpu\", torch.bfloat16)`, eager and under inductor "
        "(inference channels_last, PyTorch's faster layout for it here); their best peer is every peer at its faster precision, "
        "float32 included (ONNX Runtime runs float32 only: its CPU kernels have no bf16 convolutions). Keras has no bf16 row "
        "(tf_keras's mixed_bfloat16 policy was not measured).",
        "ONNX Runtime and inductor run the inference rows on the PyTorch graphs (ORT on their `torch.onnx.export`, ORT_ENABLE_ALL; "
        "inductor `torch.compile` with freezing, static shapes). The best peer is the fastest measured column of the row.",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    if args.write:
        # Hand-written sections after the marker (analysis, history) survive a new table.
        marker = "<!-- end of the generated table -->\n"
        kept = ""
        if os.path.exists(args.write):
            old = open(args.write).read()
            kept = old.split(marker, 1)[1] if marker in old else ""
        with open(args.write, "w") as f:
            f.write(text + "\n" + marker + kept)


if __name__ == "__main__":
    main()
