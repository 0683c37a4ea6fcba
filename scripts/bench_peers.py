#!/usr/bin/env python3
"""The keras-tch benchmark workloads in a peer framework, for scripts/bench-compare.sh.

  bench_peers.py --framework keras|torch|ort|inductor [--repeats 5]

prints one JSON object with the same keys as `keras-tch bench --json` (medians after warm-up):
course_train_step_b32_s, course_predict_b32_s, imagenet_predict_b1_img_per_s,
imagenet_predict_b8_img_per_s, happy_epoch_600_b16_s.

keras: tf_keras 2.21 on TensorFlow CPU (oneDNN), the course ResNet50 and HappyModel exactly as
scripts/keras_fixtures.py builds them, tf_keras.applications.ResNet50; train_on_batch /
predict_on_batch / fit. torch: PyTorch eager, the same graphs written as nn.Modules (TF 'same'
padding done with explicit pads), torch.optim.Adam, fp32. ort and inductor: the inference rows
only (course predict, ImageNet predict), on those same PyTorch graphs: ONNX Runtime on their
ONNX export, and torch.compile with freezing.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def keras_workloads(repeats):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tf_keras
    import keras_fixtures as fx

    rng = np.random.default_rng(0)
    out = {}
    model = fx.course_resnet50()
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    x = rng.random((32, 64, 64, 3), dtype=np.float32)
    y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, 32)]
    out["course_train_step_b32_s"] = timed(lambda: model.train_on_batch(x, y), 2, repeats)
    out["course_predict_b32_s"] = timed(lambda: model.predict_on_batch(x), 2, repeats)

    imagenet = tf_keras.applications.ResNet50(weights=None)
    for batch in (1, 8):
        xb = rng.random((batch, 224, 224, 3), dtype=np.float32)
        out[f"imagenet_predict_b{batch}_img_per_s"] = batch / timed(lambda: imagenet.predict_on_batch(xb), 1, repeats)

    happy = fx.happy_model()
    happy.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    xh = rng.random((600, 64, 64, 3), dtype=np.float32)
    yh = rng.integers(0, 2, (600, 1)).astype(np.float32)
    out["happy_epoch_600_b16_s"] = timed(lambda: happy.fit(xh, yh, epochs=1, batch_size=16, verbose=0), 1, repeats)
    return out


def torch_modules():
    """The benchmark graphs as PyTorch modules: the course ResNet50 / Keras ResNet50 (TF padding
    as explicit pads, BatchNorm with Keras's epsilon) and HappyModel. Returns (ResNet50, Happy)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def same_pad(k, s, size):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return (total // 2, total - total // 2)

    class Conv(nn.Module):
        """Conv2D with TF padding ('same' asymmetric, or 'valid')."""

        def __init__(self, cin, cout, k, s=1, same=False):
            super().__init__()
            self.conv, self.k, self.s, self.same = nn.Conv2d(cin, cout, k, s), k, s, same

        def forward(self, x):
            if self.same:
                ph, pw = same_pad(self.k, self.s, x.shape[2]), same_pad(self.k, self.s, x.shape[3])
                x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
            return self.conv(x)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        """The course's identity / convolutional block (stride on the first 1x1)."""

        def __init__(self, cin, filters, s=1, projection=False):
            super().__init__()
            f1, f2, f3 = filters
            self.a, self.bna = Conv(cin, f1, 1, s), bn(f1)
            self.b, self.bnb = Conv(f1, f2, 3, 1, same=True), bn(f2)
            self.c, self.bnc = Conv(f2, f3, 1), bn(f3)
            self.short = nn.Sequential(Conv(cin, f3, 1, s), bn(f3)) if projection else None

        def forward(self, x):
            y = F.relu(self.bna(self.a(x)))
            y = F.relu(self.bnb(self.b(y)))
            y = self.bnc(self.c(y))
            return F.relu(y + (self.short(x) if self.short is not None else x))

    class ResNet50(nn.Module):
        def __init__(self, classes, flatten_features):
            super().__init__()
            self.conv1, self.bn1 = Conv(3, 64, 7, 2), bn(64)
            layers, cin = [], 64
            for filters, blocks, s in [((64, 64, 256), 3, 1), ((128, 128, 512), 4, 2), ((256, 256, 1024), 6, 2), ((512, 512, 2048), 3, 2)]:
                layers.append(Block(cin, filters, s, projection=True))
                layers += [Block(filters[2], filters) for _ in range(blocks - 1)]
                cin = filters[2]
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(flatten_features, classes)

        def forward(self, x):
            x = F.pad(x, (3, 3, 3, 3))
            x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2)
            x = self.layers(x)
            x = F.avg_pool2d(x, 2) if x.shape[2] == 2 else F.adaptive_avg_pool2d(x, 1)
            return self.fc(torch.flatten(x, 1))

    class Happy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(3, 32, 7), bn(32), nn.Linear(32 * 32 * 32, 1)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.bn(self.conv(F.pad(x, (3, 3, 3, 3))))), 2)
            return self.fc(torch.flatten(x, 1))

    return ResNet50, Happy


def torch_workloads(repeats):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    ResNet50, Happy = torch_modules()
    out = {}
    model = ResNet50(6, 2048)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(32, 3, 64, 64)
    y = torch.randint(0, 6, (32,))

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    model.train()
    out["course_train_step_b32_s"] = timed(train_step, 2, repeats)
    model.eval()
    with torch.no_grad():
        out["course_predict_b32_s"] = timed(lambda: model(x), 2, repeats)
        imagenet = ResNet50(1000, 2048).eval()
        for batch in (1, 8):
            xb = torch.rand(batch, 3, 224, 224)
            out[f"imagenet_predict_b{batch}_img_per_s"] = batch / timed(lambda: imagenet(xb), 1, repeats)

    happy = Happy()
    happy_optimizer = torch.optim.Adam(happy.parameters(), 1e-3)
    xh, yh = torch.rand(600, 3, 64, 64), torch.randint(0, 2, (600, 1)).float()

    def happy_epoch():
        happy.train()
        for start in range(0, 600, 16):
            happy_optimizer.zero_grad()
            F.binary_cross_entropy_with_logits(happy(xh[start:start + 16]), yh[start:start + 16]).backward()
            happy_optimizer.step()

    out["happy_epoch_600_b16_s"] = timed(happy_epoch, 1, repeats)

    # bf16: torch.autocast, PyTorch's own mixed precision (bf16 convolutions and matmuls, fp32
    # weights and loss). Inference runs channels_last, which measured faster for bf16 here
    # (ImageNet batch 8: 43 img/s against 33 contiguous), so PyTorch gets its better layout.
    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def train_step_bf16():
        optimizer.zero_grad()
        with bf16():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    model.train()
    out["course_train_step_b32_s_bf16"] = timed(train_step_bf16, 2, repeats)
    model.eval()
    cl = torch.channels_last
    with torch.no_grad(), bf16():
        model_cl, x_cl = model.to(memory_format=cl), x.contiguous(memory_format=cl)
        out["course_predict_b32_s_bf16"] = timed(lambda: model_cl(x_cl), 2, repeats)
        imagenet_cl = imagenet.to(memory_format=cl)
        for batch in (1, 8):
            xb = torch.rand(batch, 3, 224, 224).contiguous(memory_format=cl)
            out[f"imagenet_predict_b{batch}_img_per_s_bf16"] = batch / timed(lambda: imagenet_cl(xb), 1, repeats)
    return out


def predict_workloads(predictor, repeats, suffix=""):
    """The inference rows for `predictor(model, example)` -> a function of an NCHW float32 batch:
    course ResNet50 predict at batch 32, ImageNet ResNet50 at batches 1 and 8; `suffix` marks
    the keys (`_bf16`)."""
    import torch

    torch.manual_seed(0)
    ResNet50, _ = torch_modules()
    out = {}
    x = torch.rand(32, 3, 64, 64)
    course = predictor(ResNet50(6, 2048).eval(), x)
    out["course_predict_b32_s" + suffix] = timed(lambda: course(x), 2, repeats)
    imagenet = ResNet50(1000, 2048).eval()
    for batch in (1, 8):
        xb = torch.rand(batch, 3, 224, 224)
        run = predictor(imagenet, xb)
        out[f"imagenet_predict_b{batch}_img_per_s" + suffix] = batch / timed(lambda: run(xb), 1, repeats)
    return out


def ort_workloads(repeats):
    """ONNX Runtime on the PyTorch graphs, exported by torch.onnx.export (its TorchScript
    exporter, opset 17, dynamic batch), ORT_ENABLE_ALL (BatchNorm folded, convolutions fused),
    as many intra-op threads as cores."""
    import io
    import warnings

    import onnxruntime as ort
    import torch

    warnings.filterwarnings("ignore")  # the TorchScript exporter's deprecation notices

    def predictor(model, example):
        graph = io.BytesIO()
        torch.onnx.export(model, (example,), graph, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = os.cpu_count()
        session = ort.InferenceSession(graph.getvalue(), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x.numpy()})

    return predict_workloads(predictor, repeats)


def inductor_workloads(repeats):
    """PyTorch inductor: torch.compile (static shapes, one compilation per batch size) with
    freezing, which folds BatchNorm and packs the convolution weights for oneDNN, as PyTorch
    advises for CPU inference; compilation happens in the warm-up calls."""
    import torch
    import torch._inductor.config

    torch._inductor.config.freezing = True

    def predictor(model, example, bf16=False):
        # bf16 as PyTorch's CPU inference guides run it: autocast around the compiled model,
        # channels_last (oneDNN's bf16 convolutions, on AMX where the CPU has it).
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        compiled = torch.compile(model, dynamic=False)

        def run(x):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return compiled(x.contiguous(memory_format=torch.channels_last) if bf16 else x)

        return run

    out = predict_workloads(predictor, repeats)
    torch._dynamo.reset()
    out.update(predict_workloads(lambda model, example: predictor(model, example, bf16=True), repeats, "_bf16"))
    torch._dynamo.reset()
    torch._inductor.config.freezing = False  # training updates the weights
    out.update(inductor_train_steps(repeats))
    return out


def inductor_train_steps(repeats):
    """The course ResNet50's training step (batch 32, Adam) with the model compiled by inductor
    (forward and backward through AOTAutograd; the optimizer step compiled too, as PyTorch's
    compiled-optimizer recipe does), float32 and under bf16 autocast; compilation happens in the
    warm-up steps."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    ResNet50, _ = torch_modules()
    out = {}
    for suffix, autocast in (("", False), ("_bf16", True)):
        model = torch.compile(ResNet50(6, 2048).train(), dynamic=False)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        step = torch.compile(optimizer.step)
        x, y = torch.rand(32, 3, 64, 64), torch.randint(0, 6, (32,))

        def train_step():
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            step()

        out["course_train_step_b32_s" + suffix] = timed(train_step, 3, repeats)
        torch._dynamo.reset()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["keras", "torch", "ort", "inductor"], required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workloads = {"keras": keras_workloads, "torch": torch_workloads, "ort": ort_workloads, "inductor": inductor_workloads}
    print(json.dumps(workloads[args.framework](args.repeats)))


if __name__ == "__main__":
    main()
