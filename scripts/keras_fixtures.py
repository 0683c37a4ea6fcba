#!/usr/bin/env python3
"""Reference fixtures made by real Keras, for keras-tch's parity tests.

Run by `scripts/setup.sh --fixtures` (the README's test command) inside the venv of
scripts/requirements-keras.txt; the output folder is keyed by this file's hash, so the fixtures
are regenerated exactly when this script (or the pinned Keras) changes.

Each fixture is a folder under --out holding what Keras wrote or computed:
  *.h5 / *.keras  model files saved by Keras itself (tf.keras 2.x = tf_keras, and Keras 3)
  io.h5           inputs and Keras's outputs for them (datasets 'x', 'y', ...), float32
  *.txt           small facts (e.g. Keras's printed summary) for tests that check text
  weights.h5      the architecture fixtures' weights: group = Keras layer name, dataset = short
                  weight name (kernel, bias, gamma, ...), Keras layout (conv HWIO, dense (in, out))
  layers.tsv      one line per model.layers entry: name, class, output shape, params,
                  trainable params, inbound layer names (comma-separated)
  counts.txt      'total N', 'trainable N', 'non_trainable N' as model.summary() counts them

Tests find them through the link tests/keras-fixtures (made by setup.sh).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402  (the Keras 2 API the notebooks were written against)

import keras_fixtures_imagenet  # noqa: E402  (the ImageNet pipeline fixture, in its own file)
import keras_fixtures_tutorial  # noqa: E402  (the TF2 tutorial's subclassed ResNet18/34 and its files)

SEED = 1


def write_io(folder: str, **arrays: np.ndarray) -> None:
    with h5py.File(os.path.join(folder, "io.h5"), "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


def fixture_conv2d_valid(folder: str) -> None:
    """A single tf.keras Conv2D (3x3, stride 1, 'valid', bias) saved with model.save(.h5)."""
    tf_keras.utils.set_random_seed(SEED)
    inputs = tf_keras.Input(shape=(6, 7, 3))
    outputs = tf_keras.layers.Conv2D(4, 3, padding="valid", name="conv")(inputs)
    model = tf_keras.Model(inputs, outputs, name="conv2d_valid")
    # Non-zero bias so a dropped bias would show.
    kernel, bias = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([kernel, np.linspace(-0.5, 0.5, bias.size).astype("float32")])
    x = np.random.default_rng(SEED).standard_normal((2, 6, 7, 3)).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    write_io(folder, x=x, y=model.predict(x, verbose=0))


def fixture_course_signs(folder: str, shared_data: str) -> None:
    """What the notebook's load_dataset()/255 and convert_to_one_hot give for test_signs.h5."""
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        x_orig = np.array(f["test_set_x"])
        y_orig = np.array(f["test_set_y"]).reshape((1, -1))
        classes = np.array(f["list_classes"])
    x = x_orig / 255.0
    y = np.eye(len(classes))[y_orig.reshape(-1)]  # convert_to_one_hot(Y, 6).T
    write_io(folder, per_image_mean=x.reshape(len(x), -1).mean(axis=1).astype("float32"),
             one_hot=y.astype("float32"), shape=np.array(x.shape, dtype="int64"))


# --- helpers shared by the architecture and layer fixtures -------------------------------------


def fresh_session() -> None:
    """Reset tf_keras's auto-name counters and seeds, so every fixture names its unnamed layers
    (input_1, activation, add, ...) as a fresh notebook kernel would, whatever ran before it."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(SEED)


def short_weight_name(weight) -> str:
    """'res2a_branch2a/kernel:0' -> 'kernel'."""
    return weight.name.split("/")[-1].split(":")[0]


def inference(model, x: np.ndarray) -> np.ndarray:
    """The model's output for x in inference mode (BN on its moving statistics), float32; works
    for tf_keras and Keras 3 (TensorFlow backend) models alike."""
    return np.asarray(model(x.astype("float32"), training=False), dtype="float32")


def randomize_bn_and_bias(model, rng: np.random.Generator, layers=tf_keras.layers) -> None:
    """Non-trivial BN statistics and biases, so a wrong epsilon, a missing BN or a dropped bias
    changes the outputs (freshly initialized BN is the identity and biases are zero). `layers` is
    the Keras layer module the model was built with (keras.layers for a Keras 3 model)."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            values = {
                "gamma": lambda n: rng.uniform(0.5, 1.5, n),
                "beta": lambda n: rng.normal(0.0, 0.1, n),
                "moving_mean": lambda n: rng.normal(0.0, 0.1, n),
                "moving_variance": lambda n: rng.uniform(0.5, 1.5, n),
            }
            layer.set_weights([values[short_weight_name(w)](w.shape[0]).astype("float32")
                               for w in layer.weights])
        elif isinstance(layer, (layers.Conv2D, layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.05, bias.shape).astype("float32")])


def write_weights(folder: str, model) -> None:
    """weights.h5: one group per layer with weights (the Keras layer name), one dataset per
    weight (its short Keras name), in Keras layout (conv HWIO, dense (in, out))."""
    with h5py.File(os.path.join(folder, "weights.h5"), "w") as f:
        for layer in model.layers:
            if not layer.weights:
                continue
            group = f.create_group(layer.name)
            for weight in layer.weights:
                group.create_dataset(short_weight_name(weight), data=weight.numpy().astype("float32"))


def write_layers(folder: str, model) -> None:
    """layers.tsv: name, class, output shape, params, trainable params, inbound layer names."""
    # The config's inbound_nodes hold only this model's nodes, in call order.
    inbound = {}
    for entry in model.get_config()["layers"]:
        nodes = entry["inbound_nodes"]
        inbound[entry["name"]] = [item[0] for item in nodes[0]] if nodes else []
    with open(os.path.join(folder, "layers.tsv"), "w") as f:
        for layer in model.layers:
            shape = layer.output_shape
            if isinstance(layer, tf_keras.layers.InputLayer):
                shape = shape[0]  # tf_keras reports [(None, ...)] for an InputLayer
            trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
            fields = [layer.name, layer.__class__.__name__, str(tuple(shape)), str(layer.count_params()),
                      str(trainable), ",".join(inbound[layer.name])]
            f.write("\t".join(fields) + "\n")


def param_counts(model) -> tuple:
    """(total, trainable, non_trainable) as model.summary() counts them."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable + non_trainable, trainable, non_trainable


def write_counts(folder: str, model, filename: str = "counts.txt") -> tuple:
    counts = param_counts(model)
    with open(os.path.join(folder, filename), "w") as f:
        f.write("total {}\ntrainable {}\nnon_trainable {}\n".format(*counts))
    return counts


def write_summary(folder: str, model) -> None:
    """summary.txt: exactly what model.summary() prints."""
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    with open(os.path.join(folder, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def expect_counts(counts: tuple, total: int, trainable: int, non_trainable: int) -> None:
    assert counts == (total, trainable, non_trainable), f"param counts {counts}, expected " \
        f"{(total, trainable, non_trainable)}"


def write_model(folder: str, model, x: np.ndarray = None, act: tuple = ()) -> tuple:
    """The common files of a functional model: weights.h5, layers.tsv, counts.txt, summary.txt,
    and with an input x also io.h5 (x, y and act/<layer> for the named intermediate layers)."""
    write_weights(folder, model)
    write_layers(folder, model)
    write_summary(folder, model)
    counts = write_counts(folder, model)
    if x is not None:
        x = x.astype("float32")
        arrays = {"x": x, "y": model(x, training=False).numpy()}
        if act:
            probe = tf_keras.Model(model.inputs, [model.get_layer(name).output for name in act])
            values = probe(x, training=False)
            if len(act) == 1:
                values = [values]  # a one-output Model returns the tensor itself
            for name, value in zip(act, values):
                arrays[f"act/{name}"] = value.numpy()
        write_io(folder, **arrays)
    return counts


def single_layer_fixture(folder: str, input_shape: tuple, layer, x: np.ndarray = None) -> None:
    fresh_session()
    rng = np.random.default_rng(SEED)
    inputs = tf_keras.Input(shape=input_shape)
    model = tf_keras.Model(inputs, layer(inputs), name=os.path.basename(folder))
    randomize_bn_and_bias(model, rng)
    if x is None:
        x = rng.standard_normal((2,) + input_shape)
    write_model(folder, model, x)


def activation_after_first_add(model) -> str:
    """The auto-named Activation after the first residual Add (the first block's output)."""
    add = next(layer for layer in model.layers if isinstance(layer, tf_keras.layers.Add))
    return next(layer.name for layer in model.layers
                if isinstance(layer, tf_keras.layers.Activation) and layer.input is add.output)


def last_activation(model) -> str:
    return [layer.name for layer in model.layers if isinstance(layer, tf_keras.layers.Activation)][-1]


# --- layer-level fixtures ------------------------------------------------------------------------


def fixture_conv_same_stride2(folder: str) -> None:
    """Conv2D 3x3, stride 2, 'same' on 7x8: odd and even sides, so TF's asymmetric 'same' padding
    (the extra row/column goes at the bottom/right) shows."""
    single_layer_fixture(folder, (7, 8, 3),
                         tf_keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv"))


def fixture_conv_same_dilated(folder: str) -> None:
    """Conv2D 3x3, dilation 2, 'same' (effective 5x5 window, padding 2 each side)."""
    single_layer_fixture(folder, (9, 9, 2),
                         tf_keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same", name="conv"))


def fixture_maxpool_same(folder: str) -> None:
    """MaxPooling2D 3, stride 2, 'same' on 7x8; the padding must act as -inf, not 0."""
    # Mostly negative inputs: a zero-padded max would give 0 in the border windows.
    x = np.random.default_rng(SEED).standard_normal((2, 7, 8, 3)) - 1.5
    single_layer_fixture(folder, (7, 8, 3),
                         tf_keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool"), x)
    with h5py.File(os.path.join(folder, "io.h5"), "r") as f:
        assert (np.array(f["y"])[:, -1] < 0).any(), "no border window shows the -inf padding"


def fixture_avgpool_same(folder: str) -> None:
    """AveragePooling2D 3, stride 2, 'same' on 7x8; TF divides by the count of real (unpadded)
    values in each window."""
    single_layer_fixture(folder, (7, 8, 3),
                         tf_keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool"))


def fixture_flatten_dense(folder: str) -> None:
    """Conv2D 1x1 -> Flatten -> Dense softmax: Flatten uses channels-last (H, W, C) order."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    inputs = tf_keras.Input(shape=(3, 4, 5))
    x = tf_keras.layers.Conv2D(2, 1, name="conv")(inputs)
    x = tf_keras.layers.Flatten(name="flatten")(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="fc")(x)
    model = tf_keras.Model(inputs, outputs, name="flatten_dense")
    randomize_bn_and_bias(model, rng)
    write_model(folder, model, rng.standard_normal((2, 3, 4, 5)))


def fixture_misc_layers(folder: str) -> None:
    """The rest of the layer set in one branching graph: asymmetric ZeroPadding2D, tanh and
    sigmoid conv activations, Concatenate on channels, valid AveragePooling2D, Dropout (inert in
    inference), GlobalMaxPooling2D, Dense relu and a softmax Activation layer."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    layers = tf_keras.layers
    inputs = tf_keras.Input(shape=(6, 7, 4))
    a = layers.Conv2D(3, 1, activation="tanh", name="branch_a")(inputs)
    b = layers.ZeroPadding2D(((1, 1), (0, 2)), name="pad")(inputs)
    b = layers.Conv2D(2, 3, activation="sigmoid", name="branch_b")(b)
    x = layers.Concatenate(name="concat")([a, b])
    x = layers.AveragePooling2D(2, name="avg")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    x = layers.GlobalMaxPooling2D(name="gmax")(x)
    x = layers.Dense(4, activation="relu", name="fc")(x)
    outputs = layers.Activation("softmax", name="probs")(x)
    model = tf_keras.Model(inputs, outputs, name="misc_layers")
    randomize_bn_and_bias(model, rng)
    write_model(folder, model, rng.standard_normal((2, 6, 7, 4)), act=("concat", "gmax"))


def fixture_bn_training(folder: str) -> None:
    """BatchNormalization(momentum=0.9) in training mode: the output normalised by the batch's
    statistics (y_train), and the moving statistics after that one call, as Keras updates them."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    inputs = tf_keras.Input(shape=(5, 5, 3))
    x = tf_keras.layers.Conv2D(4, 3, name="conv")(inputs)
    outputs = tf_keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    model = tf_keras.Model(inputs, outputs, name="bn_training")
    randomize_bn_and_bias(model, rng)
    x = rng.standard_normal((4, 5, 5, 3)).astype("float32")
    write_model(folder, model, x)  # weights before the training call, y in inference
    y_train = model(x, training=True).numpy()
    bn = model.get_layer("bn")
    with h5py.File(os.path.join(folder, "io.h5"), "a") as f:
        f.create_dataset("y_train", data=y_train)
        f.create_dataset("moving_mean_after", data=bn.moving_mean.numpy())
        f.create_dataset("moving_variance_after", data=bn.moving_variance.numpy())


# --- the course's "Residual Networks" assignment (Keras 2 version) -------------------------------


def course_identity_block(X, f, filters, stage, block):
    """The assignment's identity_block: 1x1 -> fxf 'same' -> 1x1, plus the unchanged input."""
    from tf_keras.initializers import glorot_uniform
    from tf_keras.layers import Activation, Add, BatchNormalization, Conv2D

    conv_name_base = "res" + str(stage) + block + "_branch"
    bn_name_base = "bn" + str(stage) + block + "_branch"
    F1, F2, F3 = filters
    X_shortcut = X

    X = Conv2D(filters=F1, kernel_size=(1, 1), strides=(1, 1), padding="valid", name=conv_name_base + "2a",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2a")(X)
    X = Activation("relu")(X)

    X = Conv2D(filters=F2, kernel_size=(f, f), strides=(1, 1), padding="same", name=conv_name_base + "2b",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2b")(X)
    X = Activation("relu")(X)

    X = Conv2D(filters=F3, kernel_size=(1, 1), strides=(1, 1), padding="valid", name=conv_name_base + "2c",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2c")(X)

    X = Add()([X, X_shortcut])
    X = Activation("relu")(X)
    return X


def course_convolutional_block(X, f, filters, stage, block, s=2):
    """The assignment's convolutional_block: like identity_block with stride s in 2a, and a
    1x1 stride-s conv + BN on the shortcut."""
    from tf_keras.initializers import glorot_uniform
    from tf_keras.layers import Activation, Add, BatchNormalization, Conv2D

    conv_name_base = "res" + str(stage) + block + "_branch"
    bn_name_base = "bn" + str(stage) + block + "_branch"
    F1, F2, F3 = filters
    X_shortcut = X

    X = Conv2D(F1, (1, 1), strides=(s, s), padding="valid", name=conv_name_base + "2a",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2a")(X)
    X = Activation("relu")(X)

    X = Conv2D(F2, (f, f), strides=(1, 1), padding="same", name=conv_name_base + "2b",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2b")(X)
    X = Activation("relu")(X)

    X = Conv2D(F3, (1, 1), strides=(1, 1), padding="valid", name=conv_name_base + "2c",
               kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name=bn_name_base + "2c")(X)

    # The shortcut is built after the main path, as in the assignment (this sets the layer order).
    X_shortcut = Conv2D(F3, (1, 1), strides=(s, s), padding="valid", name=conv_name_base + "1",
                        kernel_initializer=glorot_uniform(seed=0))(X_shortcut)
    X_shortcut = BatchNormalization(axis=3, name=bn_name_base + "1")(X_shortcut)

    X = Add()([X, X_shortcut])
    X = Activation("relu")(X)
    return X


def course_resnet50(input_shape=(64, 64, 3), classes=6, use_dropout=False, dropout_rate=0.0):
    """The assignment's ResNet50; use_dropout/dropout_rate are the second seed's variant
    (Dropout between Flatten and the classifier)."""
    from tf_keras.initializers import glorot_uniform
    from tf_keras.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
                                 Flatten, Input, MaxPooling2D, ZeroPadding2D)

    X_input = Input(input_shape)
    X = ZeroPadding2D((3, 3))(X_input)

    # Stage 1
    X = Conv2D(64, (7, 7), strides=(2, 2), name="conv1", kernel_initializer=glorot_uniform(seed=0))(X)
    X = BatchNormalization(axis=3, name="bn_conv1")(X)
    X = Activation("relu")(X)
    X = MaxPooling2D((3, 3), strides=(2, 2))(X)

    # Stage 2
    X = course_convolutional_block(X, f=3, filters=[64, 64, 256], stage=2, block="a", s=1)
    X = course_identity_block(X, 3, [64, 64, 256], stage=2, block="b")
    X = course_identity_block(X, 3, [64, 64, 256], stage=2, block="c")

    # Stage 3
    X = course_convolutional_block(X, f=3, filters=[128, 128, 512], stage=3, block="a", s=2)
    for block in "bcd":
        X = course_identity_block(X, 3, [128, 128, 512], stage=3, block=block)

    # Stage 4
    X = course_convolutional_block(X, f=3, filters=[256, 256, 1024], stage=4, block="a", s=2)
    for block in "bcdef":
        X = course_identity_block(X, 3, [256, 256, 1024], stage=4, block=block)

    # Stage 5
    X = course_convolutional_block(X, f=3, filters=[512, 512, 2048], stage=5, block="a", s=2)
    X = course_identity_block(X, 3, [512, 512, 2048], stage=5, block="b")
    X = course_identity_block(X, 3, [512, 512, 2048], stage=5, block="c")

    X = AveragePooling2D((2, 2), name="avg_pool")(X)
    X = Flatten()(X)
    if use_dropout:
        X = Dropout(dropout_rate)(X)
    X = Dense(classes, activation="softmax", name="fc" + str(classes),
              kernel_initializer=glorot_uniform(seed=0))(X)
    return tf_keras.Model(inputs=X_input, outputs=X, name="ResNet50")


def course_block_fixture(folder: str, block_fn, **block_args) -> None:
    fresh_session()
    rng = np.random.default_rng(SEED)
    inputs = tf_keras.Input(shape=(4, 4, 6))
    model = tf_keras.Model(inputs, block_fn(inputs, **block_args), name=os.path.basename(folder))
    randomize_bn_and_bias(model, rng)
    # The notebook's test input.
    np.random.seed(1)
    x = np.random.randn(3, 4, 4, 6)
    write_model(folder, model, x)


def fixture_course_identity_block(folder: str) -> None:
    """The assignment's identity_block(f=2, filters=[2, 4, 6], stage=1, block='a') on (4, 4, 6)."""
    course_block_fixture(folder, course_identity_block, f=2, filters=[2, 4, 6], stage=1, block="a")


def fixture_course_convolutional_block(folder: str) -> None:
    """The assignment's convolutional_block(f=2, filters=[2, 4, 6], stage=1, block='a'), s=2."""
    course_block_fixture(folder, course_convolutional_block, f=2, filters=[2, 4, 6], stage=1, block="a")


def fixture_course_resnet50(folder: str) -> None:
    """The assignment's ResNet50(input_shape=(64, 64, 3), classes=6), with outputs."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = course_resnet50(input_shape=(64, 64, 3), classes=6)
    randomize_bn_and_bias(model, rng)
    x = rng.uniform(0.0, 1.0, (2, 64, 64, 3))  # like the notebook's images / 255
    counts = write_model(folder, model, x, act=("bn_conv1", activation_after_first_add(model)))
    expect_counts(counts, 23_600_006, 23_546_886, 53_120)


def fixture_resnet50_dropout(folder: str) -> None:
    """The second seed's ResNet50(input_shape=(224, 224, 3), classes=1000, use_dropout=True,
    dropout_rate=0.2): structure only (layers, counts, summary)."""
    fresh_session()
    model = course_resnet50(input_shape=(224, 224, 3), classes=1000, use_dropout=True, dropout_rate=0.2)
    write_layers(folder, model)
    write_summary(folder, model)
    expect_counts(write_counts(folder, model), 42_020_712, 41_967_592, 53_120)


def happy_model(keras_module=tf_keras, input_shape=(64, 64, 3)):
    """The Keras-tutorial assignment's HappyModel, built with `keras_module` (tf_keras, or keras
    for Keras 3: same layers and explicit names, Keras 3's own auto-names for the rest)."""
    layers = keras_module.layers
    X_input = layers.Input(input_shape)
    X = layers.ZeroPadding2D((3, 3))(X_input)
    X = layers.Conv2D(32, (7, 7), strides=(1, 1), name="conv0")(X)
    X = layers.BatchNormalization(axis=3, name="bn0")(X)
    X = layers.Activation("relu")(X)
    X = layers.MaxPooling2D((2, 2), name="max_pool")(X)
    X = layers.Flatten()(X)
    X = layers.Dense(1, activation="sigmoid", name="fc")(X)
    return keras_module.Model(inputs=X_input, outputs=X, name="HappyModel")


def fixture_happy_model(folder: str) -> None:
    """The Keras-tutorial assignment's HappyModel on (64, 64, 3), with outputs."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = happy_model()
    randomize_bn_and_bias(model, rng)
    x = rng.standard_normal((2, 64, 64, 3))
    expect_counts(write_model(folder, model, x, act=("bn0",)), 37_633, 37_569, 64)


# --- keras.applications ResNet50, both naming schemes --------------------------------------------


def copy_weights_by_name(source, target) -> None:
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def randomized_applications_model(build, input_scale: float = 1.0, top_scale: float = 1.0) -> tuple:
    """(model, x): the include_top model in a fresh session with random BN statistics and biases,
    the classifier's kernel times `top_scale`, and a batch of 2 inputs like caffe-preprocessed
    (mean-subtracted BGR) pixels times `input_scale`. The same arguments give the same weights
    and x in every fixture."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = build(include_top=True, pooling=None)
    randomize_bn_and_bias(model, rng)
    top = model.layers[-1]
    top.set_weights([top.get_weights()[0] * top_scale, top.get_weights()[1]])
    x = (rng.uniform(-120.0, 130.0, (2, 64, 64, 3)) * input_scale).astype("float32")
    return model, x


def applications_fixture(folder: str, build, act_fn, input_scale: float = 1.0, top_scale: float = 1.0) -> None:
    """Common to both applications fixtures: the include_top model with outputs, and the counts
    of the include_top=False, pooling='avg' model (same weights minus the top). `input_scale`
    keeps activations in a range where float32 comparisons mean something; `top_scale` shrinks
    the classifier's kernel so the softmax output is not saturated to one-hot."""
    model, x = randomized_applications_model(build, input_scale, top_scale)
    expect_counts(write_model(folder, model, x, act=act_fn(model)), 25_636_712, 25_583_592, 53_120)

    notop = build(include_top=False, pooling="avg")
    copy_weights_by_name(model, notop)
    expect_counts(write_counts(folder, notop, "counts_notop_avg.txt"), 23_587_712, 23_534_592, 53_120)


def keras_resnet50(include_top=True, pooling=None):
    """tf_keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))."""
    return tf_keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), include_top=include_top,
                                          pooling=pooling, classes=1000)


def fixture_applications_resnet50_keras(folder: str) -> None:
    """tf_keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3)): the Keras >= 2.2.5
    naming (conv1_conv, conv1_bn with epsilon 1.001e-5, conv2_block1_0_conv, ..., predictions)."""
    applications_fixture(folder, keras_resnet50,
                         lambda model: ("conv1_bn", "conv2_block1_out", "conv5_block3_out"))


def legacy_identity_block(input_tensor, kernel_size, filters, stage, block):
    """keras-applications <= 1.0.8 resnet50.identity_block (no stride, he_normal kernels)."""
    from tf_keras import layers

    filters1, filters2, filters3 = filters
    conv_name_base = "res" + str(stage) + block + "_branch"
    bn_name_base = "bn" + str(stage) + block + "_branch"

    x = layers.Conv2D(filters1, (1, 1), kernel_initializer="he_normal", name=conv_name_base + "2a")(input_tensor)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2a")(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(filters2, kernel_size, padding="same", kernel_initializer="he_normal",
                      name=conv_name_base + "2b")(x)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2b")(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(filters3, (1, 1), kernel_initializer="he_normal", name=conv_name_base + "2c")(x)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2c")(x)

    x = layers.add([x, input_tensor])
    x = layers.Activation("relu")(x)
    return x


def legacy_conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2)):
    """keras-applications <= 1.0.8 resnet50.conv_block: the stride is on the 1x1 2a conv and on
    the 1x1 shortcut conv."""
    from tf_keras import layers

    filters1, filters2, filters3 = filters
    conv_name_base = "res" + str(stage) + block + "_branch"
    bn_name_base = "bn" + str(stage) + block + "_branch"

    x = layers.Conv2D(filters1, (1, 1), strides=strides, kernel_initializer="he_normal",
                      name=conv_name_base + "2a")(input_tensor)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2a")(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(filters2, kernel_size, padding="same", kernel_initializer="he_normal",
                      name=conv_name_base + "2b")(x)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2b")(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(filters3, (1, 1), kernel_initializer="he_normal", name=conv_name_base + "2c")(x)
    x = layers.BatchNormalization(axis=3, name=bn_name_base + "2c")(x)

    shortcut = layers.Conv2D(filters3, (1, 1), strides=strides, kernel_initializer="he_normal",
                             name=conv_name_base + "1")(input_tensor)
    shortcut = layers.BatchNormalization(axis=3, name=bn_name_base + "1")(shortcut)

    x = layers.add([x, shortcut])
    x = layers.Activation("relu")(x)
    return x


def legacy_resnet50(include_top=True, pooling=None, input_shape=(64, 64, 3), classes=1000):
    """keras-applications <= 1.0.8 resnet50.ResNet50 (conv1, bn_conv1, res2a_branch2a, ..., fc1000)."""
    from tf_keras import layers

    img_input = layers.Input(shape=input_shape)
    x = layers.ZeroPadding2D(padding=(3, 3), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, (7, 7), strides=(2, 2), padding="valid", kernel_initializer="he_normal",
                      name="conv1")(x)
    x = layers.BatchNormalization(axis=3, name="bn_conv1")(x)
    x = layers.Activation("relu")(x)
    x = layers.ZeroPadding2D(padding=(1, 1), name="pool1_pad")(x)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)

    x = legacy_conv_block(x, 3, [64, 64, 256], stage=2, block="a", strides=(1, 1))
    x = legacy_identity_block(x, 3, [64, 64, 256], stage=2, block="b")
    x = legacy_identity_block(x, 3, [64, 64, 256], stage=2, block="c")

    x = legacy_conv_block(x, 3, [128, 128, 512], stage=3, block="a")
    for block in "bcd":
        x = legacy_identity_block(x, 3, [128, 128, 512], stage=3, block=block)

    x = legacy_conv_block(x, 3, [256, 256, 1024], stage=4, block="a")
    for block in "bcdef":
        x = legacy_identity_block(x, 3, [256, 256, 1024], stage=4, block=block)

    x = legacy_conv_block(x, 3, [512, 512, 2048], stage=5, block="a")
    x = legacy_identity_block(x, 3, [512, 512, 2048], stage=5, block="b")
    x = legacy_identity_block(x, 3, [512, 512, 2048], stage=5, block="c")

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation="softmax", name="fc1000")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    return tf_keras.Model(img_input, x, name="resnet50")


def fixture_applications_resnet50_legacy(folder: str) -> None:
    """keras-applications <= 1.0.8 ResNet50 (the naming of older pretrained .h5 files) on
    (64, 64, 3), with BN at the default epsilon 1e-3."""
    # he_normal kernels with un-normalising random BN statistics grow activations ~1e4-fold over
    # the 16 blocks (~3e6 at full pixel scale): scale the input down and the classifier with it.
    applications_fixture(folder, legacy_resnet50,
                         lambda model: ("bn_conv1", activation_after_first_add(model), last_activation(model)),
                         input_scale=0.01, top_scale=1e-4)


# --- ResNet18/34 (third seed: a TF2 subclassed-model tutorial; its classes and weight-file fixture
# are in keras_fixtures_tutorial.py) -----------------------------------------------------------


def subclassed_resnet_fixture(folder: str, layer_dims, expected: tuple) -> None:
    fresh_session()
    model = keras_fixtures_tutorial.tutorial_resnet(tf_keras, layer_dims)
    model.build(input_shape=(None, 224, 224, 3))
    write_summary(folder, model)
    expect_counts(write_counts(folder, model), *expected)


def fixture_resnet18(folder: str) -> None:
    """The tutorial's ResNet([2, 2, 2, 2]) built for (None, 224, 224, 3)."""
    subclassed_resnet_fixture(folder, [2, 2, 2, 2], (12_053_608, 12_045_800, 7_808))


def fixture_resnet34(folder: str) -> None:
    """The tutorial's ResNet([3, 4, 6, 3]) built for (None, 224, 224, 3)."""
    subclassed_resnet_fixture(folder, [3, 4, 6, 3], (22_735_912, 22_720_680, 15_232))


# --- Keras model and weight files, for keras-tch's .h5 / .keras importer and exporter ------------
# Each folder holds the file(s) Keras wrote and io.h5 with 'x' (batch 2, NHWC, float32) and 'y' (the
# model's output for x in inference).


def fixture_h5_course_resnet50(folder: str) -> None:
    """model.h5: the assignment's ResNet50 (64x64x3, 6 classes; the course_resnet50 fixture's
    weights and x) compiled as the notebook does (adam, categorical_crossentropy, accuracy) and
    saved with model.save: tf_keras's legacy HDF5 full-model format (model_config,
    training_config, model_weights)."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = course_resnet50(input_shape=(64, 64, 3), classes=6)
    randomize_bn_and_bias(model, rng)
    x = rng.uniform(0.0, 1.0, (2, 64, 64, 3)).astype("float32")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    model.save(os.path.join(folder, "model.h5"))
    y = inference(model, x)
    # The notebook's K.set_learning_phase(1) before evaluate: in the Keras 2.x of the course,
    # evaluate then ran the training-mode graph (BatchNorm on each batch's statistics). TF 2's
    # evaluate ignores the learning phase, so this is that computation written out: Keras's
    # forward pass with training=True on the one batch, and Keras's categorical cross-entropy of
    # it against labels arange(2) % 6.
    labels = np.eye(6, dtype="float32")[np.arange(len(x)) % 6]
    probabilities = model(x, training=True)
    loss_phase_1 = float(np.mean(tf_keras.losses.categorical_crossentropy(labels, probabilities).numpy()))
    write_io(folder, x=x, y=y, loss_learning_phase_1=np.float64(loss_phase_1))


def fixture_h5_happy(folder: str) -> None:
    """model.h5: HappyModel (the happy_model fixture's weights) compiled as the Keras-tutorial
    notebook does (Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-08),
    binary_crossentropy, accuracy), saved with model.save (legacy HDF5 full model)."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = happy_model()
    randomize_bn_and_bias(model, rng)
    x = rng.uniform(0.0, 1.0, (2, 64, 64, 3)).astype("float32")
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-08),
                  loss="binary_crossentropy", metrics=["accuracy"])
    model.save(os.path.join(folder, "model.h5"))
    write_io(folder, x=x, y=inference(model, x))


def activation_layers_model(keras_module):
    """Keras's ReLU and Softmax layer classes (not Activation): a capped, thresholded, leaky ReLU
    after a convolution, a plain auto-named ReLU (re_lu), a Softmax over the channels of an image
    and a Dense head ending in a Softmax layer."""
    layers = keras_module.layers
    inputs = keras_module.Input(shape=(5, 6, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = layers.ReLU(max_value=0.8, negative_slope=0.3, threshold=0.2, name="capped_leaky_relu")(x)
    x = layers.Conv2D(3, 1, name="conv_1x1")(x)
    x = layers.ReLU()(x)
    x = layers.Softmax(name="channel_softmax")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(5, name="fc")(x)
    outputs = layers.Softmax(name="probs")(x)
    return keras_module.Model(inputs, outputs, name="activation_layers")


def fixture_h5_activation_layers(folder: str) -> None:
    """model.h5 (tf_keras model.save) and model.keras (Keras 3 model.save) of the
    activation_layers model, both with the same weights; io.h5 'x', 'y' (tf_keras), 'y_keras3'."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = activation_layers_model(tf_keras)
    randomize_bn_and_bias(model, rng)
    x = (2.0 * rng.standard_normal((2, 5, 6, 3))).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    keras = keras3_session()
    keras3_model = activation_layers_model(keras)
    keras3_model.set_weights(model.get_weights())
    keras3_model.save(os.path.join(folder, "model.keras"))
    y = inference(model, x)
    y_keras3 = inference(keras3_model, x)
    np.testing.assert_allclose(y_keras3, y, atol=1e-6)
    names = [layer.name for layer in model.layers]
    assert "re_lu" in names and "capped_leaky_relu" in names, names
    write_io(folder, x=x, y=y, y_keras3=y_keras3)


def preprocessing_layers_model(keras_module, adapt_on: np.ndarray):
    """Keras's Normalization (adapted per channel on adapt_on, adapted with axis=None, given, and
    inverted), Resizing (bilinear up and down, nearest, bicubic, crop_to_aspect_ratio), CenterCrop
    (a crop, and a target larger than the image: smart_resize) and LeakyReLU (default and 0.1)
    on one (7, 10, 3) input; every branch flattened and concatenated into one output."""
    layers = keras_module.layers
    slope = "alpha" if keras_module is tf_keras else "negative_slope"
    inputs = keras_module.Input(shape=(7, 10, 3))
    adapted = layers.Normalization(name="norm_adapted")
    adapted.adapt(adapt_on)
    overall = layers.Normalization(axis=None, name="norm_overall")
    overall.adapt(adapt_on)
    x = adapted(inputs)
    given = layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0], name="norm_given")(inputs)
    inverted = layers.Normalization(mean=1.5, variance=9.0, invert=True, name="norm_inverted")(overall(inputs))
    branches = [
        layers.Resizing(12, 15, name="resize_up")(x),
        layers.Resizing(4, 6, name="resize_down")(x),
        layers.Resizing(9, 5, interpolation="nearest", name="resize_nearest")(x),
        layers.Resizing(11, 13, interpolation="bicubic", name="resize_bicubic")(given),
        layers.Resizing(4, 9, interpolation="bicubic", name="resize_bicubic_down")(given),
        layers.Resizing(5, 5, crop_to_aspect_ratio=True, name="resize_crop")(x),
        layers.CenterCrop(5, 6, name="center_crop")(inverted),
        layers.CenterCrop(8, 12, name="center_crop_larger")(x),
        layers.LeakyReLU(name="leaky")(x),
        layers.LeakyReLU(**{slope: 0.1}, name="leaky_small")(given),
    ]
    outputs = layers.Concatenate(name="all")([layers.Flatten()(branch) for branch in branches])
    return keras_module.Model(inputs, outputs, name="preprocessing_layers")


def fixture_preprocessing_layers(folder: str) -> None:
    """model.h5 (tf_keras) and model.keras (Keras 3) of preprocessing_layers_model, with the same
    adapted statistics; pad.keras: Keras 3's Resizing(6, 6, pad_to_aspect_ratio=True,
    fill_value=0.5) alone (tf.keras has no padding); io.h5: 'x', 'y' (tf_keras), 'y_keras3',
    'y_pad'. counts.txt: tf_keras's parameter counts (Normalization's mean, variance, count)."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    adapt_on = (rng.standard_normal((16, 7, 10, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]).astype("float32")
    x = (rng.standard_normal((2, 7, 10, 3)) * 2.0).astype("float32")
    model = preprocessing_layers_model(tf_keras, adapt_on)
    model.save(os.path.join(folder, "model.h5"))
    write_counts(folder, model)
    keras = keras3_session()
    keras3_model = preprocessing_layers_model(keras, adapt_on)
    keras3_model.set_weights(model.get_weights())
    keras3_model.save(os.path.join(folder, "model.keras"))
    y, y_keras3 = inference(model, x), inference(keras3_model, x)
    np.testing.assert_allclose(y_keras3, y, atol=1e-5)
    inputs = keras.Input(shape=(7, 10, 3))
    pad = keras.Model(inputs, keras.layers.Resizing(6, 6, pad_to_aspect_ratio=True, fill_value=0.5, name="resize_pad")(inputs))
    pad.save(os.path.join(folder, "pad.keras"))
    write_io(folder, x=x, y=y, y_keras3=y_keras3, y_pad=inference(pad, x))


def fixture_h5_weights_keras(folder: str) -> None:
    """weights.h5: model.save_weights of tf_keras.applications.ResNet50(weights=None,
    input_shape=(64, 64, 3)) (the applications_resnet50_keras fixture's weights and x): the
    weights-only layout of the ImageNet checkpoints in the Keras >= 2.2.5 naming
    (resnet50_weights_tf_dim_ordering_tf_kernels.h5). weights_notop.h5: the same of the
    include_top=False, pooling='avg' model (weights copied by name; io.h5 'features' is its
    output for x), like the ..._notop.h5 checkpoint."""
    model, x = randomized_applications_model(keras_resnet50)
    model.save_weights(os.path.join(folder, "weights.h5"))
    tf_keras.backend.clear_session()  # the notop model's input is 'input_1', as in a fresh process
    notop = keras_resnet50(include_top=False, pooling="avg")
    copy_weights_by_name(model, notop)
    notop.save_weights(os.path.join(folder, "weights_notop.h5"))
    write_io(folder, x=x, y=inference(model, x), features=inference(notop, x))


def legacy_weights_model() -> tuple:
    """(model, x) of the applications_resnet50_legacy fixture (same weights and x)."""
    return randomized_applications_model(legacy_resnet50, input_scale=0.01, top_scale=1e-4)


def fixture_h5_weights_legacy(folder: str) -> None:
    """weights.h5: model.save_weights of the keras-applications <= 1.0.8 ResNet50 (conv1,
    bn_conv1, res2a_branch2a, ..., fc1000; the applications_resnet50_legacy fixture's weights and
    x): the layout of the Keras 2 era ImageNet checkpoints in that naming."""
    model, x = legacy_weights_model()
    model.save_weights(os.path.join(folder, "weights.h5"))
    write_io(folder, x=x, y=inference(model, x))


# Keras 1's TensorFlow-backend variable names: '<layer>_<suffix>:0'.
KERAS1_WEIGHT_SUFFIX = {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta",
                        "moving_mean": "running_mean", "moving_variance": "running_std"}


def write_keras1_weights(path: str, model) -> None:
    """What Keras 1's model.save_weights wrote (topology.save_weights_to_hdf5_group): root
    attribute layer_names (every layer); per layer a root group with attribute weight_names and
    one dataset per weight named by it, trainable weights first. No keras_version/backend
    attribute, no model_weights group. Keras 1 set the attributes to lists of bytes, which the
    h5py 2 of its day stored through numpy.asarray: fixed-length null-padded strings ('S<n>'),
    and for a weightless layer's [] an empty float64 array. (h5py 3 stores a list of bytes as
    variable-length strings, so the arrays are made explicitly.)"""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.asarray([layer.name.encode("utf8") for layer in model.layers])
        for layer in model.layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}_{KERAS1_WEIGHT_SUFFIX[short_weight_name(w)]}:0".encode("utf8") for w in weights]
            group.attrs["weight_names"] = np.asarray(names)
            for name, weight in zip(names, weights):
                group.create_dataset(name, data=weight.numpy())


def fixture_h5_weights_keras1(folder: str) -> None:
    """weights.h5 in the layout of the original Keras 1 ImageNet checkpoint (fchollet
    deep-learning-models v0.2 resnet50_weights_tf_dim_ordering_tf_kernels.h5), holding the
    h5_weights_legacy fixture's weights (same x and y). Keras 1 cannot be installed here, so this
    reproduces its writer with h5py: datasets '<layer>_W:0' (conv HWIO, dense (in, out)),
    '<layer>_b:0', BN '<layer>_gamma:0', '_beta:0', '_running_mean:0', '_running_std:0' (which,
    as in the real file, holds the moving VARIANCE). The layer names are the legacy builder's
    (conv1_pad, activation, ...), not Keras 1's auto-names (zeropadding2d_1, activation_1, ...),
    which only weightless layers carry. Checked: tf_keras loads it as a Keras 1 file (no
    keras_version) into a fresh legacy model that then gives y."""
    model, x = legacy_weights_model()
    path = os.path.join(folder, "weights.h5")
    write_keras1_weights(path, model)
    y = inference(model, x)
    write_io(folder, x=x, y=y)

    fresh_session()
    reloaded = legacy_resnet50()
    reloaded.load_weights(path)
    np.testing.assert_array_equal(inference(reloaded, x), y)


# --- Keras 3 files -------------------------------------------------------------------------------


def keras3_session():
    """The keras 3 module in a fresh session (auto-name counters reset, seeded)."""
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(SEED)
    return keras


def save_keras3(folder: str, model) -> None:
    """model.keras (model.save: the zip of config.json, metadata.json, model.weights.h5) and
    model.weights.h5 (model.save_weights)."""
    model.save(os.path.join(folder, "model.keras"))
    model.save_weights(os.path.join(folder, "model.weights.h5"))


def fixture_keras3_resnet50(folder: str) -> None:
    """Keras 3 keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3)) with random BN
    statistics and biases, as model.keras and model.weights.h5; layer_order.txt lists
    model.layers names in order (the order of Keras 3's weight file, layers/<name>/vars/<i>)."""
    keras = keras3_session()
    rng = np.random.default_rng(SEED)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3))
    randomize_bn_and_bias(model, rng, keras.layers)
    x = rng.uniform(-120.0, 130.0, (2, 64, 64, 3)).astype("float32")
    save_keras3(folder, model)
    with open(os.path.join(folder, "layer_order.txt"), "w") as f:
        f.write("".join(layer.name + "\n" for layer in model.layers))
    write_io(folder, x=x, y=inference(model, x))


def fixture_keras3_happy(folder: str) -> None:
    """Keras 3 HappyModel (auto-named input_layer, zero_padding2d, activation, flatten) compiled
    like h5_happy, as model.keras and model.weights.h5."""
    keras = keras3_session()
    rng = np.random.default_rng(SEED)
    model = happy_model(keras)
    randomize_bn_and_bias(model, rng, keras.layers)
    x = rng.uniform(0.0, 1.0, (2, 64, 64, 3)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-08),
                  loss="binary_crossentropy", metrics=["accuracy"])
    save_keras3(folder, model)
    write_io(folder, x=x, y=inference(model, x))


def fixture_h5_course_resnet50_evaluate(folder: str, shared_data: str) -> None:
    """evaluate.txt: 'loss <float>' and 'accuracy <float>' of the h5_course_resnet50 fixture's
    model.h5, loaded with tf_keras.models.load_model (compiled from its training_config) and
    evaluated as the notebook does: model.evaluate(X_test, Y_test) (batch_size 32) on
    test_signs.h5 / 255 with one-hot labels."""
    model = tf_keras.models.load_model(os.path.join(os.path.dirname(folder), "h5_course_resnet50", "model.h5"))
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        x_test = np.array(f["test_set_x"]) / 255.0
        y_test = np.eye(6)[np.array(f["test_set_y"]).reshape(-1)]
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=32, verbose=0)
    with open(os.path.join(folder, "evaluate.txt"), "w") as f:
        f.write(f"loss {float(loss)!r}\naccuracy {float(accuracy)!r}\n")


def training_fixture(folder: str, model, optimizer, loss: str, x_train, y_train, x_held, y_held) -> None:
    """Training parity: the initial model (initial.h5, model.save before any step), the loss of
    the first batch in training mode (first_batch_loss in io.h5), then fit(epochs=2,
    batch_size=32, shuffle=False) as the notebooks call it; history.json holds Keras's per-epoch
    loss/accuracy (train and validation), io.h5 the data and the trained model's predictions on
    held-out images (y_held_pred)."""
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    model.save(os.path.join(folder, "initial.h5"))
    # On a copy: a training-mode call moves BatchNorm's moving statistics.
    import tensorflow as tf
    start = tf_keras.models.load_model(os.path.join(folder, "initial.h5"))
    first = start.compiled_loss(tf.constant(y_train[:32], tf.float32),
                                start(tf.constant(x_train[:32], tf.float32), training=True))
    history = model.fit(x_train, y_train, epochs=2, batch_size=32, shuffle=False, verbose=0,
                        validation_data=(x_held, y_held))
    with open(os.path.join(folder, "history.json"), "w") as f:
        json.dump({k: [float(v) for v in values] for k, values in history.history.items()}, f)
    write_io(folder, x_train=x_train.astype("float32"), y_train=y_train.astype("float32"),
             x_held=x_held.astype("float32"), y_held=y_held.astype("float32"),
             y_held_pred=inference(model, x_held.astype("float32")),
             first_batch_loss=np.array(float(first), dtype="float32"))


def keras_spread(folder: str, name: str, shared_data: str) -> None:
    """Keras's own reproducibility for a training fixture: the same run with TensorFlow's oneDNN
    kernels switched off (TF_ENABLE_ONEDNN_OPTS=0, another float summation order), written as
    history_plain.json and io_plain.h5. A few Adam steps from a random start amplify rounding
    (Adam moves a parameter by about the learning rate whatever the size of its gradient, so
    gradients that are pure rounding noise - e.g. of a bias followed by BatchNorm - still move),
    so two correct implementations differ by this much; the tests allow the larger of 1e-3 and
    twice this spread."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", KERAS_FIXTURES_NO_SPREAD="1")
        subprocess.run([sys.executable, __file__, "--out", scratch, "--shared-data", shared_data, "--only", name,
                        "--class-index", CLASS_INDEX],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        os.replace(os.path.join(scratch, name, "history.json"), os.path.join(folder, "history_plain.json"))
        os.replace(os.path.join(scratch, name, "io.h5"), os.path.join(folder, "io_plain.h5"))


def fixture_train_course_resnet50(folder: str, shared_data: str) -> None:
    """The course ResNet50 trained as the notebook does (adam, categorical_crossentropy,
    accuracy, batch 32) for 2 epochs on the real SIGNS test set (/255, one-hot): the first 96
    images train, the last 24 are held out."""
    fresh_session()
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        x = np.array(f["test_set_x"]) / 255.0
        y = np.eye(6)[np.array(f["test_set_y"]).reshape(-1)]
    model = course_resnet50(input_shape=(64, 64, 3), classes=6)
    training_fixture(folder, model, "adam", "categorical_crossentropy", x[:96], y[:96], x[96:], y[96:])
    if not os.environ.get("KERAS_FIXTURES_NO_SPREAD"):
        keras_spread(folder, "train_course_resnet50", shared_data)


def fixture_train_signs_cnn(folder: str, shared_data: str) -> None:
    """categorical_crossentropy training parity on a well-conditioned model: the HappyModel
    topology (conv0 without bias) with a 6-way softmax (`fc6`) trained with adam (Keras defaults) for 2 epochs on the
    real SIGNS test set (first 96 images; the last 24 held out). The course ResNet50 from a random
    start is not reproducible between two Keras runs beyond its first batch (see keras_spread),
    so its strict checks stop there."""
    fresh_session()
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        x = np.array(f["test_set_x"]) / 255.0
        y = np.eye(6)[np.array(f["test_set_y"]).reshape(-1)]
    layers = tf_keras.layers
    inputs = layers.Input((64, 64, 3))
    h = layers.ZeroPadding2D((3, 3))(inputs)
    # No bias before the BatchNorm: its true gradient is zero, so Adam would move it by rounding
    # noise alone (differently in every implementation) and the held-out predictions with it.
    h = layers.Conv2D(32, (7, 7), use_bias=False, name="conv0")(h)
    h = layers.BatchNormalization(axis=3, name="bn0")(h)
    h = layers.Activation("relu")(h)
    h = layers.MaxPooling2D((2, 2), name="max_pool")(h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(6, activation="softmax", name="fc6")(h)
    model = tf_keras.Model(inputs, outputs, name="SignsCNN")
    training_fixture(folder, model, "adam", "categorical_crossentropy", x[:96], y[:96], x[96:], y[96:])
    if not os.environ.get("KERAS_FIXTURES_NO_SPREAD"):
        keras_spread(folder, "train_signs_cnn", shared_data)


def fixture_train_happy_catvnoncat(folder: str, shared_data: str) -> None:
    """HappyModel trained as the Keras-tutorial notebook does (Adam(lr=0.001, epsilon=1e-08),
    binary_crossentropy, accuracy, batch 32 here) for 2 epochs on the course's cat/non-cat
    training set (209 images, /255); the cat/non-cat test set (50) is held out."""
    fresh_session()
    with h5py.File(os.path.join(shared_data, "train_catvnoncat.h5"), "r") as f:
        x_train = np.array(f["train_set_x"]) / 255.0
        y_train = np.array(f["train_set_y"]).reshape(-1, 1).astype("float32")
    with h5py.File(os.path.join(shared_data, "test_catvnoncat.h5"), "r") as f:
        x_held = np.array(f["test_set_x"]) / 255.0
        y_held = np.array(f["test_set_y"]).reshape(-1, 1).astype("float32")
    optimizer = tf_keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-08)
    training_fixture(folder, happy_model(), optimizer, "binary_crossentropy", x_train, y_train, x_held, y_held)
    if not os.environ.get("KERAS_FIXTURES_NO_SPREAD"):
        keras_spread(folder, "train_happy_catvnoncat", shared_data)


# --- The lecture's case studies ------------------------------------------------------------------


def fixture_vgg16(folder: str) -> None:
    """tf_keras.applications.VGG16(weights=None): the layer table and counts (no outputs: the
    138M-parameter model adds nothing the layer tests do not cover)."""
    fresh_session()
    model = tf_keras.applications.VGG16(weights=None)
    write_layers(folder, model)
    expect_counts(write_counts(folder, model), 138_357_544, 138_357_544, 0)


def fixture_inception_module(folder: str) -> None:
    """The lecture's Inception module on 28x28x192 (1x1 64; 1x1 96 -> 3x3 128; 1x1 16 -> 5x5 32;
    3x3/1 'same' max pool -> 1x1 32; Concatenate -> 256 channels), with random biases, and its
    outputs for a random input."""
    from tf_keras import layers

    fresh_session()
    rng = np.random.default_rng(SEED)
    x_in = layers.Input(shape=(28, 28, 192))

    def conv(filters, size, name, x):
        return layers.Conv2D(filters, size, padding="same", activation="relu", name=f"inception_{name}")(x)

    b1 = conv(64, 1, "1x1", x_in)
    b3 = conv(128, 3, "3x3", conv(96, 1, "3x3_reduce", x_in))
    b5 = conv(32, 5, "5x5", conv(16, 1, "5x5_reduce", x_in))
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name="inception_pool")(x_in)
    bp = conv(32, 1, "pool_proj", bp)
    out = layers.Concatenate(axis=-1, name="inception_output")([b1, b3, b5, bp])
    model = tf_keras.Model(x_in, out, name="inception_module")
    randomize_bn_and_bias(model, rng)
    x = rng.normal(0.0, 1.0, (2, 28, 28, 192)).astype("float32")
    write_model(folder, model, x)


def table_fixture(folder: str, model) -> None:
    """layers.tsv and counts.txt of a model built in tf_keras (a case study's definition)."""
    write_layers(folder, model)
    write_counts(folder, model)


def fixture_lenet5(folder: str) -> None:
    """LeNet-5 as the lecture draws it (tanh, 2x2 average pooling, 120 -> 84 -> 10 softmax)."""
    from tf_keras import layers

    fresh_session()
    x_in = layers.Input(shape=(32, 32, 1))
    x = layers.Conv2D(6, 5, activation="tanh", name="c1")(x_in)
    x = layers.AveragePooling2D(2, name="s2")(x)
    x = layers.Conv2D(16, 5, activation="tanh", name="c3")(x)
    x = layers.AveragePooling2D(2, name="s4")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="tanh", name="c5")(x)
    x = layers.Dense(84, activation="tanh", name="f6")(x)
    x = layers.Dense(10, activation="softmax", name="output")(x)
    table_fixture(folder, tf_keras.Model(x_in, x, name="lenet5"))


def fixture_alexnet(folder: str) -> None:
    """AlexNet as the lecture draws it, on one device (227x227x3)."""
    from tf_keras import layers

    fresh_session()
    x_in = layers.Input(shape=(227, 227, 3))
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(x_in)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dropout(0.5, name="drop6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    x = layers.Dropout(0.5, name="drop7")(x)
    x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    table_fixture(folder, tf_keras.Model(x_in, x, name="alexnet"))


def keras_inception_module(x, filters, name):
    """An Inception module in tf_keras: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3/1 max pool -> 1x1."""
    from tf_keras import layers

    conv1, reduce3, conv3, reduce5, conv5, pool_proj = filters

    def conv(n, size, part, y):
        return layers.Conv2D(n, size, padding="same", activation="relu", name=f"{name}_{part}")(y)

    b1 = conv(conv1, 1, "1x1", x)
    b3 = conv(conv3, 3, "3x3", conv(reduce3, 1, "3x3_reduce", x))
    b5 = conv(conv5, 5, "5x5", conv(reduce5, 1, "5x5_reduce", x))
    bp = conv(pool_proj, 1, "pool_proj", layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x))
    return layers.Concatenate(axis=-1, name=f"{name}_output")([b1, b3, b5, bp])


def fixture_googlenet(folder: str) -> None:
    """GoogLeNet (Szegedy et al. 2014, Table 1) without auxiliary classifiers and LRN."""
    from tf_keras import layers

    fresh_session()
    x_in = layers.Input(shape=(224, 224, 3))
    x = layers.Conv2D(64, 7, strides=2, padding="same", activation="relu", name="conv1_7x7")(x_in)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = layers.Conv2D(64, 1, activation="relu", name="conv2_3x3_reduce")(x)
    x = layers.Conv2D(192, 3, padding="same", activation="relu", name="conv2_3x3")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    stages = [
        [("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64))],
        [("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)), ("4c", (128, 128, 256, 24, 64, 64)),
         ("4d", (112, 144, 288, 32, 64, 64)), ("4e", (256, 160, 320, 32, 128, 128))],
        [("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128))],
    ]
    for stage, modules in zip((3, 4, 5), stages):
        for name, filters in modules:
            x = keras_inception_module(x, filters, f"inception_{name}")
        if stage != 5:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{stage}")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    table_fixture(folder, tf_keras.Model(x_in, x, name="googlenet"))


def guide_model(keras, augmentation: bool = False):
    """The model of Keras's transfer-learning guide, on a ResNet50 base (weights=None: nothing is
    downloaded): with `augmentation`, its random augmentation block (a Sequential of RandomFlip,
    RandomRotation and RandomContrast) first; then Rescaling, the whole base as one layer
    called with training=False, GlobalAveragePooling2D, Dropout, Dense. Returns (model, base)."""
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    base.trainable = False
    inputs = keras.Input(shape=(64, 64, 3))
    x = inputs
    if augmentation:
        x = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1),
                              keras.layers.RandomContrast(0.2)], name="data_augmentation")(x)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1)(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs), base


def fixture_nested_models(folder: str) -> None:
    """The transfer-learning guide's model (guide_model) saved by tf.keras (model.h5) and by
    Keras 3 (model.keras) with the same weights (random BN statistics and biases in the base);
    io.h5: 'x' (pixels in 0..255), 'y' (tf.keras) and 'y_keras3'."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model, base = guide_model(tf_keras)
    randomize_bn_and_bias(base, rng)
    randomize_bn_and_bias(model, rng)
    x = rng.uniform(0.0, 255.0, (2, 64, 64, 3)).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    keras = keras3_session()
    keras3_model, _ = guide_model(keras)
    keras3_model.set_weights(model.get_weights())
    keras3_model.save(os.path.join(folder, "model.keras"))
    y, y_keras3 = inference(model, x), inference(keras3_model, x)
    np.testing.assert_allclose(y_keras3, y, atol=1e-5)
    write_io(folder, x=x, y=y, y_keras3=y_keras3)
    nested_training(folder, rng)


def fixture_nested_augmented(folder: str) -> None:
    """The guide's model with its augmentation block (guide_model(augmentation=True)), saved by
    tf.keras (model.h5) and Keras 3 (model.keras) with the same weights; io.h5: 'x', 'y'
    (tf.keras, inference: the augmentation is the identity), 'y_keras3'."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model, base = guide_model(tf_keras, augmentation=True)
    randomize_bn_and_bias(base, rng)
    randomize_bn_and_bias(model, rng)
    x = rng.uniform(0.0, 255.0, (2, 64, 64, 3)).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    keras = keras3_session()
    keras3_model, _ = guide_model(keras, augmentation=True)
    keras3_model.set_weights(model.get_weights())
    keras3_model.save(os.path.join(folder, "model.keras"))
    y, y_keras3 = inference(model, x), inference(keras3_model, x)
    np.testing.assert_allclose(y_keras3, y, atol=1e-5)
    write_io(folder, x=x, y=y, y_keras3=y_keras3)


def deep_nested_model(keras):
    """Models nested two levels deep: a Sequential (Conv2D, BatchNormalization, ReLU) inside a
    Functional 'block' (then a 1x1 Conv2D 'proj'), called with training=False inside the outer
    model (then GlobalAveragePooling2D, Dense)."""
    layers = keras.layers
    inner = keras.Sequential([layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(), layers.ReLU()], name="inner")
    block_input = keras.Input(shape=(8, 8, 3))
    block = keras.Model(block_input, layers.Conv2D(5, 1, name="proj")(inner(block_input)), name="block")
    inputs = keras.Input(shape=(8, 8, 3))
    x = layers.GlobalAveragePooling2D()(block(inputs, training=False))
    return keras.Model(inputs, layers.Dense(2)(x), name="outer")


def fixture_nested_deep(folder: str) -> None:
    """deep_nested_model saved by tf.keras (model.h5) and Keras 3 (model.keras) with the same
    weights (random BatchNorm statistics and biases); io.h5: 'x', 'y' (tf.keras), 'y_keras3'."""
    fresh_session()
    rng = np.random.default_rng(SEED)
    model = deep_nested_model(tf_keras)
    inner = model.get_layer("block").get_layer("inner")
    randomize_bn_and_bias(inner, rng)
    randomize_bn_and_bias(model.get_layer("block"), rng)
    randomize_bn_and_bias(model, rng)
    x = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    model.save(os.path.join(folder, "model.h5"))
    keras = keras3_session()
    keras3_model = deep_nested_model(keras)
    keras3_model.set_weights(model.get_weights())
    keras3_model.save(os.path.join(folder, "model.keras"))
    y, y_keras3 = inference(model, x), inference(keras3_model, x)
    np.testing.assert_allclose(y_keras3, y, atol=1e-5)
    write_io(folder, x=x, y=y, y_keras3=y_keras3)


# Zooms and translations at fixed factors: (name, class, keyword arguments).
FIXED_GEOMETRY = [
    ("zoom_out", "RandomZoom", {"height_factor": (0.2, 0.2)}),
    ("zoom_in_wide", "RandomZoom", {"height_factor": (-0.3, -0.3), "width_factor": (0.1, 0.1)}),
    ("translate", "RandomTranslation", {"height_factor": (0.25, 0.25), "width_factor": (-0.125, -0.125)}),
]


def fixture_augmentation(folder: str) -> None:
    """The geometric augmentations in training at fixed factors, on a non-square image, by
    tf.keras and Keras 3: RandomRotation (factor (f, f): 90 and 36 degrees counter-clockwise)
    in each fill mode, and the FIXED_GEOMETRY zooms and translations (reflect and constant);
    RandomRotation((0.1, 0.1)) with a constant fill_value of 40.5, bilinear and nearest;
    io.h5: 'x', '<keras>_<factor>_<fill_mode>', '<keras>_<name>_<fill_mode>' and
    '<keras>_fill_value_<interpolation>'."""
    import keras

    x = (np.arange(2 * 6 * 8 * 3, dtype="float32").reshape(2, 6, 8, 3) * 7.0) % 97.0
    arrays = {"x": x}
    for version, module in [("keras3", keras), ("tf_keras", tf_keras)]:
        for factor in (0.25, 0.1):
            for fill in ("reflect", "constant", "nearest"):
                layer = module.layers.RandomRotation((factor, factor), fill_mode=fill)
                arrays[f"{version}_{factor}_{fill}"] = np.asarray(layer(x, training=True), dtype="float32")
        for name, class_name, kwargs in FIXED_GEOMETRY:
            for fill in ("reflect", "constant"):
                layer = getattr(module.layers, class_name)(**kwargs, fill_mode=fill)
                arrays[f"{version}_{name}_{fill}"] = np.asarray(layer(x, training=True), dtype="float32")
        # A constant fill of another value than 0, bilinear and nearest.
        for interpolation in ("bilinear", "nearest"):
            layer = module.layers.RandomRotation((0.1, 0.1), fill_mode="constant", fill_value=40.5, interpolation=interpolation)
            arrays[f"{version}_fill_value_{interpolation}"] = np.asarray(layer(x, training=True), dtype="float32")
    write_io(folder, **arrays)


def nested_training(folder: str, rng: np.random.Generator, seeds: int = 5) -> None:
    """Training the guide's model as the guide compiles it (Adam(1e-3), sparse categorical
    cross-entropy from_logits, accuracy), base frozen, one epoch of 64 images in batches of 32,
    no shuffle, with `seeds` seeds: Dropout makes each run's loss differ, and their spread is
    Keras's own run-to-run spread. train_initial.h5: the compiled model before training;
    train.h5: x, y (labels), loss (one per seed). Checks that the base's BatchNorm statistics
    do not move (training=False at its call)."""
    x = rng.uniform(0.0, 255.0, (64, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 3, 64)
    losses = []
    for seed in range(seeds):
        model = tf_keras.models.load_model(os.path.join(folder, "model.h5"), compile=False)
        tf_keras.utils.set_random_seed(seed)
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-3),
                      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        if seed == 0:
            model.save(os.path.join(folder, "train_initial.h5"))
        bn = model.get_layer("resnet50").get_layer("conv5_block3_3_bn")
        before = bn.moving_mean.numpy().copy()
        history = model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
        assert np.array_equal(before, bn.moving_mean.numpy()), "the frozen base's BatchNorm moved"
        losses.append(history.history["loss"][0])
    with h5py.File(os.path.join(folder, "train.h5"), "w") as f:
        f["x"], f["y"] = x, y.astype("float32")
        f["loss"] = np.array(losses, dtype="float64")


# --- Keras runs that tests used to start themselves (TensorFlow takes seconds to import, and
# their results depend only on the script and, for one, the course data) -----------------------


def run_script(script: str, args, env=None, stdout_to=None) -> None:
    """Run scripts/SCRIPT with ARGS in a fresh Python (its own TensorFlow settings), optionally
    writing its standard output to the file stdout_to."""
    import subprocess

    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), script), *args]
    result = subprocess.run(command, check=True, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE)
    if stdout_to:
        with open(stdout_to, "wb") as f:
            f.write(result.stdout)


def fixture_callbacks(folder: str) -> None:
    """keras_callbacks.py's results (both Keras versions' callbacks and schedules on scripted
    logs), as results.json, for tests/callbacks.rs."""
    run_script("keras_callbacks.py", [], stdout_to=os.path.join(folder, "results.json"))


def fixture_class_weight(folder: str) -> None:
    """keras_class_weight.py's files (tf.keras fit with class_weight), for tests/training.rs;
    oneDNN off, as the test compares 3 epochs at 1e-5."""
    run_script("keras_class_weight.py", [folder], env={"TF_ENABLE_ONEDNN_OPTS": "0"})


def fixture_continue_training(folder: str, shared_data: str) -> None:
    """keras_continue_training.py's first part (both Keras versions train, save and continue),
    for tests/optimizer_state.rs, which continues the saved files here and in Keras."""
    run_script("keras_continue_training.py", ["--shared-data", shared_data, "--out", folder])


FIXTURES = {
    "conv2d_valid": fixture_conv2d_valid,
    "conv_same_stride2": fixture_conv_same_stride2,
    "conv_same_dilated": fixture_conv_same_dilated,
    "maxpool_same": fixture_maxpool_same,
    "avgpool_same": fixture_avgpool_same,
    "flatten_dense": fixture_flatten_dense,
    "misc_layers": fixture_misc_layers,
    "bn_training": fixture_bn_training,
    "course_identity_block": fixture_course_identity_block,
    "course_convolutional_block": fixture_course_convolutional_block,
    "course_resnet50": fixture_course_resnet50,
    "resnet50_dropout": fixture_resnet50_dropout,
    "happy_model": fixture_happy_model,
    "applications_resnet50_keras": fixture_applications_resnet50_keras,
    "applications_resnet50_legacy": fixture_applications_resnet50_legacy,
    "resnet18": fixture_resnet18,
    "resnet34": fixture_resnet34,
    "h5_course_resnet50": fixture_h5_course_resnet50,
    "h5_happy": fixture_h5_happy,
    "h5_activation_layers": fixture_h5_activation_layers,
    "preprocessing_layers": fixture_preprocessing_layers,
    "h5_weights_keras": fixture_h5_weights_keras,
    "h5_weights_legacy": fixture_h5_weights_legacy,
    "h5_weights_keras1": fixture_h5_weights_keras1,
    "keras3_resnet50": fixture_keras3_resnet50,
    "keras3_happy": fixture_keras3_happy,
    "vgg16": fixture_vgg16,
    "inception_module": fixture_inception_module,
    "lenet5": fixture_lenet5,
    "alexnet": fixture_alexnet,
    "googlenet": fixture_googlenet,
    "nested_models": fixture_nested_models,
    "nested_augmented": fixture_nested_augmented,
    "nested_deep": fixture_nested_deep,
    "augmentation": fixture_augmentation,
    "callbacks": fixture_callbacks,
    "class_weight": fixture_class_weight,
}
SHARED_DATA_FIXTURES = {
    "train_course_resnet50": fixture_train_course_resnet50,
    "train_happy_catvnoncat": fixture_train_happy_catvnoncat,
    "train_signs_cnn": fixture_train_signs_cnn,
    "course_signs": fixture_course_signs,
    "h5_course_resnet50_evaluate": fixture_h5_course_resnet50_evaluate,  # after FIXTURES: reads its model.h5
    "tutorial_resnet": keras_fixtures_tutorial.fixture_tutorial_resnet,
    "continue_training": fixture_continue_training,
    "imagenet_pipeline": lambda folder, shared_data: keras_fixtures_imagenet.fixture_imagenet_pipeline(
        folder, shared_data, CLASS_INDEX, sys.modules[__name__]),
}
CLASS_INDEX = None  # --class-index: Keras's imagenet_class_index.json (made by setup.sh)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write the fixtures into")
    parser.add_argument("--shared-data", required=True, help="the course data folder (../shared/data)")
    parser.add_argument("--only", help="make just this fixture (used for the oneDNN-off reruns)")
    parser.add_argument("--class-index", required=True, help="Keras's imagenet_class_index.json")
    args = parser.parse_args()
    global CLASS_INDEX
    CLASS_INDEX = args.class_index

    if args.only:
        folder = os.path.join(args.out, args.only)
        os.makedirs(folder, exist_ok=True)
        if args.only in FIXTURES:
            FIXTURES[args.only](folder)
        else:
            SHARED_DATA_FIXTURES[args.only](folder, args.shared_data)
        return 0

    for name, make in FIXTURES.items():
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        make(folder)
        print(f"fixture {name}")

    if os.path.isdir(args.shared_data):
        for name, make in SHARED_DATA_FIXTURES.items():
            folder = os.path.join(args.out, name)
            os.makedirs(folder, exist_ok=True)
            make(folder, args.shared_data)
            print(f"fixture {name} (from {args.shared_data})")
    elif os.environ.get("CI") == "true":
        print(f"error: the course data folder {args.shared_data} is missing (CI=true)", file=sys.stderr)
        return 1
    else:
        print(f"note: {args.shared_data} is missing; the course-data fixtures are not made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
