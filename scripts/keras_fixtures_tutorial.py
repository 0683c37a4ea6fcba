"""The TF2 ResNet18/34 tutorial's subclassed model (the third seed), for tf.keras and Keras 3, and
the fixture of the weight files its users have in hand: what `model.save_weights` writes.

`tutorial_resnet(keras, layer_dims)` is the tutorial's code (`BasicBlock`, `build_resblock`,
`ResNet`), written once against whichever Keras module it is given (tf_keras or keras 3).
scripts/keras_fixtures.py uses it for the summary fixtures and the file fixture below;
scripts/keras_check.py uses it (--subclassed) to load what keras-tch writes.

Folder tutorial_resnet/ (made from ../shared/data's photos):
  io.h5                      'x': 4 real photos at 224x224 scaled to [0, 1] (my_image.jpg and 3 SIGNS
                             test images, resized by Pillow, bilinear); 'y/<arch>_<keras>': the
                             model's own model(x, training=False) for each file below
  <arch>_tf_keras.h5         tf.keras save_weights('x.h5') (groups sequential, sequential_1, …)
  <arch>_keras3.weights.h5   Keras 3 save_weights('x.weights.h5') (attribute paths)
  resnet18_tf_keras_bad.h5   resnet18_tf_keras.h5 with one kernel of another shape (BAD_DATASET)
for <arch> in resnet18, resnet34 and <keras> in tf_keras, keras3; every BatchNorm has non-trivial
moving statistics and every bias is non-zero.
"""
import os
import shutil

import h5py
import numpy as np
from PIL import Image

SEED = 1
ARCHS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}
# The kernel the 'bad' file changes: layer2's first block's second convolution, (3, 3, 128, 128).
BAD_DATASET = "sequential_4/basic_block_2/conv2d_8/kernel:0"
BAD_SHAPE = (3, 3, 128, 64)


def tutorial_resnet(keras, layer_dims, num_classes=1000):
    """The tutorial's `ResNet(layer_dims)`, with `keras` the tf_keras or keras 3 module. Every
    `BasicBlock` has a 1x1 `downsample` convolution (also at stride 1): that variant is what gives
    the tutorial's counts (12,053,608 / 22,735,912)."""
    layers = keras.layers

    class BasicBlock(layers.Layer):
        def __init__(self, filter_num, stride=1):
            super().__init__()
            self.conv1 = layers.Conv2D(filter_num, (3, 3), strides=stride, padding="same")
            self.bn1 = layers.BatchNormalization()
            self.relu = layers.Activation("relu")
            self.conv2 = layers.Conv2D(filter_num, (3, 3), strides=1, padding="same")
            self.bn2 = layers.BatchNormalization()
            self.downsample = keras.Sequential([layers.Conv2D(filter_num, (1, 1), strides=stride)])

        def call(self, inputs, training=None):
            out = self.relu(self.bn1(self.conv1(inputs), training=training))
            out = self.bn2(self.conv2(out), training=training)
            identity = self.downsample(inputs)
            return keras.activations.relu(layers.add([out, identity]))

    def build_resblock(filter_num, blocks, stride=1):
        res_blocks = keras.Sequential()
        res_blocks.add(BasicBlock(filter_num, stride))
        for _ in range(1, blocks):
            res_blocks.add(BasicBlock(filter_num, stride=1))
        return res_blocks

    class ResNet(keras.Model):
        def __init__(self, layer_dims, num_classes=1000):
            super().__init__()
            self.stem = keras.Sequential([
                layers.Conv2D(64, (7, 7), strides=(2, 2), padding="same"),
                layers.BatchNormalization(),
                layers.Activation("relu"),
                layers.MaxPool2D(pool_size=(3, 3), strides=(2, 2), padding="same"),
            ])
            self.layer1 = build_resblock(64, layer_dims[0])
            self.layer2 = build_resblock(128, layer_dims[1], stride=2)
            self.layer3 = build_resblock(256, layer_dims[2], stride=2)
            self.layer4 = build_resblock(512, layer_dims[3], stride=2)
            self.avgpool = layers.GlobalAveragePooling2D()
            self.fc = layers.Dense(num_classes)

        def call(self, inputs, training=None):
            x = self.stem(inputs, training=training)
            x = self.layer1(x, training=training)
            x = self.layer2(x, training=training)
            x = self.layer3(x, training=training)
            x = self.layer4(x, training=training)
            return self.fc(self.avgpool(x))

    return ResNet(layer_dims, num_classes)


def keras_module(name: str):
    """tf_keras or keras 3 in a fresh session (auto-name counters reset, seeded), so the files
    name their groups as a fresh notebook kernel would."""
    if name == "tf_keras":
        import tf_keras as keras

        keras.backend.clear_session()
    else:
        import keras

        keras.utils.clear_session()
    keras.utils.set_random_seed(SEED)
    return keras


def built_tutorial_resnet(keras, arch: str):
    """The tutorial's model for `arch`, built for (None, 224, 224, 3) as the tutorial does
    (`model.build`; Keras 3 makes a subclassed model's variables only when it is called)."""
    model = tutorial_resnet(keras, ARCHS[arch])
    if keras.__name__ == "tf_keras":
        model.build(input_shape=(None, 224, 224, 3))
    else:
        model(np.zeros((1, 224, 224, 3), dtype="float32"), training=False)
    return model


def randomize_statistics(model, keras, rng: np.random.Generator) -> None:
    """Non-trivial BatchNorm statistics and non-zero biases in every nested layer. The moving
    statistics follow the layer's own scale (mean around 0, variance around 1), so activations stay
    in range through the 16 blocks of ResNet34."""
    layers = keras.layers
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.normal(0.0, 0.1, n).astype("float32"),
                               rng.normal(0.0, 0.1, n).astype("float32"), rng.uniform(0.5, 1.5, n).astype("float32")])
        elif isinstance(layer, (layers.Conv2D, layers.Dense)):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.05, bias.shape).astype("float32")])


def photos(shared_data: str) -> np.ndarray:
    """4 real photos at 224x224 in [0, 1]: my_image.jpg and the first 3 SIGNS test images."""
    images = [Image.open(os.path.join(shared_data, "my_image.jpg")).convert("RGB")]
    with h5py.File(os.path.join(shared_data, "test_signs.h5"), "r") as f:
        images += [Image.fromarray(np.asarray(image)) for image in f["test_set_x"][:3]]
    resized = [np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR), dtype="float32") for image in images]
    return np.stack(resized) / 255.0


def fixture_tutorial_resnet(folder: str, shared_data: str) -> None:
    x = photos(shared_data).astype("float32")
    outputs = {}
    for arch in ARCHS:
        for keras_name, file_name in [("tf_keras", f"{arch}_tf_keras.h5"), ("keras3", f"{arch}_keras3.weights.h5")]:
            keras = keras_module(keras_name)
            model = built_tutorial_resnet(keras, arch)
            randomize_statistics(model, keras, np.random.default_rng(SEED))
            model.save_weights(os.path.join(folder, file_name))
            outputs[f"y/{arch}_{keras_name}"] = np.asarray(model(x, training=False), dtype="float32")
    with h5py.File(os.path.join(folder, "io.h5"), "w") as f:
        f.create_dataset("x", data=x)
        for name, value in outputs.items():
            f.create_dataset(name, data=value)
    bad = os.path.join(folder, "resnet18_tf_keras_bad.h5")
    shutil.copyfile(os.path.join(folder, "resnet18_tf_keras.h5"), bad)
    with h5py.File(bad, "r+") as f:
        del f[BAD_DATASET]
        f.create_dataset(BAD_DATASET, data=np.zeros(BAD_SHAPE, dtype="float32"))
