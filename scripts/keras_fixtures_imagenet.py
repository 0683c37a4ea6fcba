"""The ImageNet pipeline fixture of scripts/keras_fixtures.py: what Keras's load_img,
img_to_array, preprocess_input, ResNet50 predict, decode_predictions and feature extraction give
on real photos, with Keras-made ResNet50 files in both naming schemes and in Keras 3's format.

Real ImageNet weights cannot be downloaded here, so the ResNet50 has random weights whose
BatchNorm statistics are calibrated on the photos (each BN's moving mean/variance set to its
input's statistics, as a trained network's are): activations stay in a trained network's range
and the softmax is spread over many classes, so top-5 comparisons mean something.

Folder imagenet_pipeline/:
  images/            the photos: my_image.jpg's derivatives in each format and pixel mode
  load_img.h5        '<file>/<interpolation>': img_to_array(load_img(file, target_size=(224, 224),
                     interpolation=…)) as uint8; '<file>/full': without target_size (small files);
                     'exif_rotated.jpg/exif_nearest': Pillow's exif_transpose, then the same;
                     '<file>/bilinear_200x300': target_size=(200, 300); 'preprocess/<mode>':
                     preprocess_input(my_image nearest, mode=…) float32
  classify.txt       the images classified, one per line (my_image.jpg = ../shared/data's)
  keras_top.h5       save_weights of tf_keras.applications.ResNet50 (conv1_conv, …, predictions),
                     the layout of keras-applications' resnet50_weights_tf_dim_ordering_tf_kernels.h5
  keras_notop.h5     the same for include_top=False (…_notop.h5)
  legacy_top.h5      the same weights in the keras-applications <= 1.0.8 naming (conv1, bn_conv1,
                     res2a_branch2a, …, fc1000) and the Keras 1 layout of fchollet's v0.2 file
  legacy_notop.h5    the same without the top
  model.keras        Keras 3 keras.applications.ResNet50 holding the same weights
  outputs.h5         'probabilities/<file stem>' (N, 1000) for the classify.txt images (load_img
                     nearest, caffe preprocess_input, predict), 'features/<file stem>_<pooling>'
  decoded.json       {file stem: {image: decode_predictions(top=5)[i] as [wnid, label, p]}}
  predicted.txt      the notebook's 'Predicted: [...]' line (top 3) of each classify.txt image
"""
import json
import os
import shutil

import h5py
import numpy as np
import tf_keras
from PIL import Image

SIZE = (224, 224)
INTERPOLATIONS = ["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
PREPROCESS_MODES = ["caffe", "tf", "torch"]
# The photos classified (lossless derivatives and baseline/progressive JPEGs).
CLASSIFIED = ["my_image.jpg", "photo.png", "grey.png", "palette.png", "small_420.jpg", "progressive.jpg"]


def write_images(folder: str, photo_path: str) -> dict:
    """my_image.jpg's derivatives, written by Pillow: {file name: path}."""
    photo = Image.open(photo_path).convert("RGB")
    medium = photo.resize((500, 375), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(1)
    alpha = Image.fromarray(rng.integers(0, 256, (375, 500), dtype=np.uint8), "L")
    grey = medium.convert("L")
    images = {
        "photo.png": lambda p: medium.save(p),
        "rgba.png": lambda p: Image.merge("RGBA", (*medium.split(), alpha)).save(p),
        "grey.png": lambda p: grey.save(p),
        "grey16.png": lambda p: Image.fromarray(np.asarray(grey, dtype=np.uint16) * 3).save(p),
        "palette.png": lambda p: medium.quantize(256).save(p),
        "photo.bmp": lambda p: medium.save(p),
        "photo.gif": lambda p: medium.save(p),
        "photo.tiff": lambda p: medium.save(p),
        "lossless.webp": lambda p: medium.save(p, lossless=True),
        "lossy.webp": lambda p: medium.save(p, quality=80),
        "small_420.jpg": lambda p: photo.resize((333, 251), Image.Resampling.LANCZOS).save(p, quality=90),
        "progressive.jpg": lambda p: medium.save(p, quality=95, progressive=True, subsampling=0),
        "grey.jpg": lambda p: grey.save(p, quality=90),
        "cmyk.jpg": lambda p: medium.convert("CMYK").save(p, quality=95),
        "tiny.png": lambda p: medium.resize((3, 2), Image.Resampling.BOX).save(p),
        "exif_rotated.jpg": lambda p: medium.save(p, quality=90, exif=exif_orientation(6)),
    }
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    paths = {"my_image.jpg": photo_path}
    for name, save in images.items():
        paths[name] = os.path.join(folder, "images", name)
        save(paths[name])
    return paths


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value  # Orientation: 6 = rotate 90° clockwise to display
    return exif.tobytes()


def load_array(path: str, interpolation: str = "nearest", target_size=SIZE) -> np.ndarray:
    image = tf_keras.utils.load_img(path, target_size=target_size, interpolation=interpolation)
    return tf_keras.utils.img_to_array(image)


def write_load_img(folder: str, paths: dict) -> None:
    from tf_keras.applications import imagenet_utils

    with h5py.File(os.path.join(folder, "load_img.h5"), "w") as f:
        for name, path in paths.items():
            for interpolation in INTERPOLATIONS:
                f.create_dataset(f"{name}/{interpolation}", data=load_array(path, interpolation).astype(np.uint8))
            f.create_dataset(f"{name}/bilinear_200x300", data=load_array(path, "bilinear", (200, 300)).astype(np.uint8))
            if name != "my_image.jpg":
                f.create_dataset(f"{name}/full", data=load_array(path, target_size=None).astype(np.uint8))
        # What --exif gives: Pillow's exif_transpose before Keras's steps (Keras itself ignores it).
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(Image.open(paths["exif_rotated.jpg"])).convert("RGB")
        f.create_dataset("exif_rotated.jpg/exif_nearest",
                         data=np.asarray(upright.resize((SIZE[1], SIZE[0]), Image.Resampling.NEAREST)))
        x = load_array(paths["my_image.jpg"])[None]
        for mode in PREPROCESS_MODES:
            f.create_dataset(f"preprocess/{mode}", data=imagenet_utils.preprocess_input(x.copy(), mode=mode))


def calibrate(model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Each BN's moving statistics from its input on x (layer by layer, so each sees the
    calibrated layers before it), random gamma/beta and biases, and the classifier scaled so the
    logits spread with a standard deviation of 2."""
    layers = tf_keras.layers
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.05, bias.shape).astype("float32")])
        elif isinstance(layer, layers.BatchNormalization):
            probe = tf_keras.Model(model.input, layer.input)
            h = np.asarray(probe(x, training=False))
            n = h.shape[-1]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.normal(0.0, 0.2, n).astype("float32"),
                               h.mean(axis=(0, 1, 2)).astype("float32"), h.var(axis=(0, 1, 2)).astype("float32")])
    top = model.layers[-1]
    features = np.asarray(tf_keras.Model(model.input, top.input)(x, training=False))
    kernel = rng.normal(0.0, 1.0, top.get_weights()[0].shape).astype("float32")
    kernel *= 2.0 / (features @ kernel).std()
    top.set_weights([kernel, rng.normal(0.0, 0.1, top.get_weights()[1].shape).astype("float32")])


def legacy_name(name: str) -> str:
    """tf.keras ResNet50 layer name -> keras-applications <= 1.0.8 name."""
    fixed = {"conv1_conv": "conv1", "conv1_bn": "bn_conv1", "predictions": "fc1000"}
    if name in fixed:
        return fixed[name]
    stage, block, index, kind = name.split("_")  # conv2_block1_1_conv
    letter = "abcdef"[int(block[len("block"):]) - 1]
    branch = "branch1" if index == "0" else "branch2" + "abc"[int(index) - 1]
    return f"{'res' if kind == 'conv' else 'bn'}{stage[len('conv'):]}{letter}_{branch}"


def copy_to_legacy(model, legacy) -> None:
    for layer in model.layers:
        if layer.weights:
            legacy.get_layer(legacy_name(layer.name)).set_weights(layer.get_weights())


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=8, verbose=0), dtype="float32")


def decoded(decode, names: list, probabilities: np.ndarray) -> dict:
    return {name: [[w, label, float(p)] for w, label, p in row]
            for name, row in zip(names, decode(probabilities, top=5))}


def fixture_imagenet_pipeline(folder: str, shared_data: str, class_index: str, keras_fixtures) -> None:
    from tf_keras.applications import resnet50

    # Keras's decode_predictions reads the class index from its cache, checking Keras's md5 of
    # the file: ours is byte-identical (else Keras would try to download it and fail here).
    # tf_keras looks in ~/.keras, Keras 3 in $KERAS_HOME: point both at a scratch folder.
    home = os.path.join(folder, "home")
    os.makedirs(os.path.join(home, ".keras", "models"), exist_ok=True)
    shutil.copy(class_index, os.path.join(home, ".keras", "models", "imagenet_class_index.json"))
    saved_home = os.environ.get("HOME")
    os.environ.update(HOME=home, KERAS_HOME=os.path.join(home, ".keras"))

    paths = write_images(folder, os.path.join(shared_data, "my_image.jpg"))
    write_load_img(folder, paths)
    with open(os.path.join(folder, "classify.txt"), "w") as f:
        f.write("".join(name + "\n" for name in CLASSIFIED))
    x = resnet50.preprocess_input(np.stack([load_array(paths[name]) for name in CLASSIFIED]))

    keras_fixtures.fresh_session()
    rng = np.random.default_rng(keras_fixtures.SEED)
    model = tf_keras.applications.ResNet50(weights=None)
    calibrate(model, x, rng)
    model.save_weights(os.path.join(folder, "keras_top.h5"))
    probabilities = {"keras_top": predict(model, x)}
    outputs = {}
    decodes = {"keras_top": decoded(resnet50.decode_predictions, CLASSIFIED, probabilities["keras_top"])}
    for pooling in (None, "avg", "max"):
        notop = tf_keras.applications.ResNet50(weights=None, include_top=False, pooling=pooling)
        keras_fixtures.copy_weights_by_name(model, notop)
        if pooling is None:
            notop.save_weights(os.path.join(folder, "keras_notop.h5"))
        outputs[f"features/keras_notop_{pooling or 'none'}"] = predict(notop, x)

    legacy = keras_fixtures.legacy_resnet50(input_shape=(224, 224, 3))
    copy_to_legacy(model, legacy)
    keras_fixtures.write_keras1_weights(os.path.join(folder, "legacy_top.h5"), legacy)
    probabilities["legacy_top"] = predict(legacy, x)
    decodes["legacy_top"] = decoded(resnet50.decode_predictions, CLASSIFIED, probabilities["legacy_top"])
    legacy_notop = keras_fixtures.legacy_resnet50(include_top=False, pooling="avg", input_shape=(224, 224, 3))
    keras_fixtures.copy_weights_by_name(legacy, legacy_notop)
    keras_fixtures.write_keras1_weights(os.path.join(folder, "legacy_notop.h5"), legacy_notop)
    outputs["features/legacy_notop_avg"] = predict(legacy_notop, x)

    # Keras 3, through its own load_img / preprocess_input / decode_predictions.
    keras = keras_fixtures.keras3_session()
    model3 = keras.applications.ResNet50(weights=None)
    for layer in model3.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    model3.save(os.path.join(folder, "model.keras"))
    x3 = keras.applications.resnet50.preprocess_input(np.stack(
        [keras.utils.img_to_array(keras.utils.load_img(paths[name], target_size=SIZE)) for name in CLASSIFIED]))
    probabilities["model_keras"] = predict(model3, x3)
    # Keras 3 fixed its cache folder when it was imported; hand it the (already md5-checked) index.
    from keras.src.applications import imagenet_utils as keras3_imagenet_utils

    with open(class_index) as f:
        keras3_imagenet_utils.CLASS_INDEX = json.load(f)
    decodes["model_keras"] = decoded(keras.applications.resnet50.decode_predictions, CLASSIFIED,
                                     probabilities["model_keras"])

    with h5py.File(os.path.join(folder, "outputs.h5"), "w") as f:
        for stem, value in probabilities.items():
            f.create_dataset(f"probabilities/{stem}", data=value)
        for name, value in outputs.items():
            f.create_dataset(name, data=value)
    with open(os.path.join(folder, "decoded.json"), "w") as f:
        json.dump(decodes, f, indent=1)
    # The notebook's print('Predicted:', decode_predictions(preds, top=3)[0]) for each image, as
    # numpy 1 printed the float32 probabilities (numpy 2 would print np.float32(...)).
    with open(os.path.join(folder, "predicted.txt"), "w") as f:
        for row in resnet50.decode_predictions(probabilities["keras_top"], top=3):
            f.write("Predicted: [" + ", ".join(f"({wnid!r}, {label!r}, {np.float32(p)!s})" for wnid, label, p in row) + "]\n")
    shutil.rmtree(home)
    os.environ.pop("KERAS_HOME")
    if saved_home is not None:
        os.environ["HOME"] = saved_home
