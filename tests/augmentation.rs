//! Keras's random augmentation layers (`RandomFlip`, `RandomRotation`, `RandomZoom`,
//! `RandomTranslation`, `RandomContrast`) against real Keras (scripts/keras_fixtures.py): the
//! identity at inference — the transfer-learning guide's model with its augmentation block gives
//! Keras's outputs, both formats — and in training Keras's transforms: rotations, zooms and
//! translations at fixed factors equal Keras's, pixel for pixel; flips, contrast factors, angles,
//! shifts and zooms are drawn from Keras's ranges.

mod common;

use serde_json::json;
use tch::{Device, Kind, Tensor};

use common::keras_fixture;
use common::parity::{assert_close, read_tensor};
use keras_tch::io::load_model;
use keras_tch::layers::affine_augmentation::{RandomRotation, RandomTranslation, RandomZoom};
use keras_tch::layers::augmentation::{RandomContrast, RandomFlip};
use keras_tch::layers::keras_config::KerasConfig;
use keras_tch::layers::registry::FromKerasConfig;
use keras_tch::layers::Layer;

/// NHWC in and out, as Keras; the layer runs on the graph's NCHW.
fn run(layer: &dyn Layer, x: &Tensor, train: bool) -> Tensor {
    layer.forward(&[&x.permute([0, 3, 1, 2])], train).permute([0, 2, 3, 1])
}

fn layer<L: FromKerasConfig>(class: &str, config: serde_json::Value) -> L {
    L::from_keras_config(&KerasConfig::new(class, &config)).unwrap()
}

#[test]
fn the_guide_model_with_its_augmentation_block_gives_keras_outputs() {
    let Some(fixture) = keras_fixture("nested_augmented") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    for (file, y) in [("model.h5", "y"), ("model.keras", "y_keras3")] {
        let model = load_model(&fixture.join(file), Device::Cpu).unwrap();
        let nested: Vec<(&str, &str)> = model.nested_models().iter().map(|n| (n.path.as_str(), n.class_name.as_str())).collect();
        assert_eq!(nested, [("data_augmentation", "Sequential"), ("resnet50", "Functional")], "{file}");
        assert_close(&format!("{file} predicted here"), &model.predict(&x).unwrap(), &read_tensor(&io, y));
    }
}

#[test]
fn rotations_at_fixed_angles_are_keras_pixel_for_pixel() {
    let Some(fixture) = keras_fixture("augmentation") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    for keras in ["keras3", "tf_keras"] {
        for factor in [0.25, 0.1] {
            for fill in ["reflect", "constant", "nearest"] {
                let rotation: RandomRotation = layer("RandomRotation", json!({ "factor": [factor, factor], "fill_mode": fill }));
                let expected = read_tensor(&io, &format!("{keras}_{factor}_{fill}"));
                assert_close(&format!("{keras} RandomRotation({factor}, fill_mode={fill})"), &run(&rotation, &x, true), &expected);
            }
        }
    }
}

/// `fill_mode="constant"` with a `fill_value` other than 0: the value outside the image, blended
/// into the edge pixels by bilinear interpolation as Keras blends it.
#[test]
fn constant_fill_takes_keras_fill_value() {
    let Some(fixture) = keras_fixture("augmentation") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    for interpolation in ["bilinear", "nearest"] {
        let config = json!({ "factor": [0.1, 0.1], "fill_mode": "constant", "fill_value": 40.5, "interpolation": interpolation });
        let rotation: RandomRotation = layer("RandomRotation", config);
        let ours = run(&rotation, &x, true);
        assert!(ours.eq(40.5).any().int64_value(&[]) == 1, "{interpolation}: the corners are filled");
        for keras in ["keras3", "tf_keras"] {
            let expected = read_tensor(&io, &format!("{keras}_fill_value_{interpolation}"));
            assert_close(&format!("{keras} RandomRotation fill_value=40.5 {interpolation}"), &ours, &expected);
        }
    }
}

/// Zooms and translations at fixed factors (scripts/keras_fixtures.py's FIXED_GEOMETRY).
#[test]
fn zooms_and_translations_at_fixed_factors_are_keras_pixel_for_pixel() {
    let Some(fixture) = keras_fixture("augmentation") else { return };
    let io = fixture.join("io.h5");
    let x = read_tensor(&io, "x");
    let cases = [
        ("zoom_out", "RandomZoom", json!({ "height_factor": [0.2, 0.2] })),
        ("zoom_in_wide", "RandomZoom", json!({ "height_factor": [-0.3, -0.3], "width_factor": [0.1, 0.1] })),
        ("translate", "RandomTranslation", json!({ "height_factor": [0.25, 0.25], "width_factor": [-0.125, -0.125] })),
    ];
    for (name, class, mut config) in cases {
        for fill in ["reflect", "constant"] {
            config["fill_mode"] = json!(fill);
            let layer: Box<dyn Layer> = match class {
                "RandomZoom" => Box::new(layer::<RandomZoom>(class, config.clone())),
                _ => Box::new(layer::<RandomTranslation>(class, config.clone())),
            };
            for keras in ["keras3", "tf_keras"] {
                let expected = read_tensor(&io, &format!("{keras}_{name}_{fill}"));
                assert_close(&format!("{keras} {class} {config}"), &run(layer.as_ref(), &x, true), &expected);
            }
        }
    }
}

#[test]
fn random_layers_are_the_identity_at_inference_and_random_in_training() {
    tch::manual_seed(7);
    let x = Tensor::rand([64, 5, 6, 3], (Kind::Float, Device::Cpu)) * 255.0;
    let flip: RandomFlip = layer("RandomFlip", json!({ "mode": "horizontal" }));
    let rotation: RandomRotation = layer("RandomRotation", json!({ "factor": 0.2 }));
    let contrast: RandomContrast = layer("RandomContrast", json!({ "factor": 0.3 }));
    let zoom: RandomZoom = layer("RandomZoom", json!({ "height_factor": 0.2 }));
    let translation: RandomTranslation = layer("RandomTranslation", json!({ "height_factor": 0.2, "width_factor": 0.2 }));
    let layers: [(&str, &dyn Layer); 5] = [
        ("RandomFlip", &flip),
        ("RandomRotation", &rotation),
        ("RandomContrast", &contrast),
        ("RandomZoom", &zoom),
        ("RandomTranslation", &translation),
    ];
    for (name, l) in layers {
        assert!(run(l, &x, false).equal(&x), "{name} at inference");
        assert!(!run(l, &x, true).equal(&x), "{name} in training");
    }
    // Each image is itself or its mirror, about half of them each.
    let flipped = run(&flip, &x, true);
    let mirrored = x.flip([2]);
    let (mut same, mut mirror) = (0, 0);
    for i in 0..64 {
        let image = flipped.get(i);
        same += image.equal(&x.get(i)) as usize;
        mirror += image.equal(&mirrored.get(i)) as usize;
    }
    assert_eq!(same + mirror, 64, "every image kept or mirrored left-right");
    assert!((16..=48).contains(&mirror), "{mirror} of 64 mirrored; Keras mirrors each with probability 1/2");
    // Contrast: per image and channel, (x - mean) scaled by one factor in [0.7, 1.3], clipped to [0, 255].
    let small = x.narrow(0, 0, 8) * 0.5 + 60.0;
    let adjusted = run(&contrast, &small, true);
    for i in 0..8 {
        let (before, after) = (small.get(i), adjusted.get(i));
        let mean = before.mean_dim([0i64, 1].as_slice(), true, Kind::Float);
        let (centred, moved) = (&before - &mean, &after - &mean);
        let factor = ((&moved * &centred).sum(Kind::Double) / (&centred * &centred).sum(Kind::Double)).double_value(&[]);
        let residual = (moved - centred * factor).abs().max().double_value(&[]);
        assert!(residual < 1e-3 && (0.7..=1.3).contains(&factor), "image {i}: factor {factor}, off by up to {residual}");
    }
}

/// The augmentation block is a nested `Sequential`: written back, tf.keras and Keras 3 load the
/// files keras-tch writes with the original's outputs.
#[test]
fn the_augmented_guide_model_is_written_back_for_both_keras() {
    let Some(fixture) = keras_fixture("nested_augmented") else { return };
    let Some(python) = common::keras_python() else { return };
    let dir = common::scratch_dir("augmented-written");
    let io = fixture.join("io.h5");
    let model = load_model(&fixture.join("model.keras"), Device::Cpu).unwrap();
    let (h5, archive) = (dir.join("model.h5"), dir.join("model.keras"));
    keras_tch::io::save_model_h5(&model, &h5).unwrap();
    keras_tch::io::save_model_keras(&model, &archive).unwrap();
    for (loader, file) in [("tf_keras", &h5), ("keras3", &archive)] {
        let args = ["--loader".as_ref(), loader.as_ref(), "--model".as_ref(), file.as_os_str()];
        let (keras_y, line) = common::parity::keras_check(&python, &args, &io, &dir.join(format!("y_{loader}.h5")));
        assert!(line.contains(" 7 23593859 "), "{loader}: {line}");
        assert_close(&format!("{} in {loader}", file.display()), &keras_y, &read_tensor(&io, "y"));
        let reopened = load_model(file, Device::Cpu).unwrap();
        assert_eq!(reopened.nested_models(), model.nested_models(), "{} read back here", file.display());
    }
}

/// Where the one bright pixel of each image went: the intensity-weighted centroid (row, column)
/// of each image of an NHWC batch.
fn centroids(images: &Tensor) -> Vec<(f64, f64)> {
    let (n, h, w) = (images.size()[0], images.size()[1], images.size()[2]);
    let mass = images.sum_dim_intlist([3i64].as_slice(), false, Kind::Double);
    let rows = Tensor::arange(h, (Kind::Double, Device::Cpu)).view([1, h, 1]);
    let columns = Tensor::arange(w, (Kind::Double, Device::Cpu)).view([1, 1, w]);
    let total = mass.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Double);
    let row = (&mass * rows).sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Double) / &total;
    let column = (&mass * columns).sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Double) / &total;
    (0..n).map(|i| (row.double_value(&[i]), column.double_value(&[i]))).collect()
}

/// The geometric draws follow Keras's distributions: on 256 copies of an image holding one
/// bright pixel 6 to the right of the centre (constant fill, so nothing else is bright), where
/// that pixel lands gives each image's angle, shift or zoom — every one inside Keras's range,
/// spread over it (both signs, at least half the range apart) and centred on no change.
#[test]
fn geometric_draws_follow_keras_ranges() {
    tch::manual_seed(11);
    let mut x = Tensor::zeros([256, 21, 21, 1], (Kind::Float, Device::Cpu));
    let _ = x.get(0).narrow(0, 10, 1).narrow(1, 16, 1).fill_(1.0);
    x = x.get(0).unsqueeze(0).repeat([256, 1, 1, 1]);
    let check = |what: &str, values: &[f64], range: (f64, f64)| {
        let (lowest, highest) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let (middle, width) = ((range.0 + range.1) / 2.0, range.1 - range.0);
        assert!(
            lowest >= range.0 - 0.03 * width && highest <= range.1 + 0.03 * width,
            "{what}: draws in [{lowest}, {highest}], Keras's range {range:?}"
        );
        assert!(highest - lowest >= width / 2.0, "{what}: draws in [{lowest}, {highest}] do not spread over {range:?}");
        assert!((mean - middle).abs() <= width / 8.0, "{what}: mean {mean}, Keras's draws centre on {middle}");
    };
    let constant = json!("constant");
    // RandomRotation(0.2): angles uniform in ±0.2 turns = ±72°, counter-clockwise positive.
    let rotation: RandomRotation = layer("RandomRotation", json!({ "factor": 0.2, "fill_mode": constant }));
    let angles: Vec<f64> = centroids(&run(&rotation, &x, true)).iter().map(|(r, c)| (-(r - 10.0)).atan2(c - 10.0).to_degrees()).collect();
    check("RandomRotation(0.2) angle", &angles, (-72.0, 72.0));
    // RandomTranslation(0.2, 0.2): shifts uniform in ±0.2 × 21 pixels on each axis.
    let translation: RandomTranslation =
        layer("RandomTranslation", json!({ "height_factor": 0.2, "width_factor": 0.2, "fill_mode": constant }));
    let moved = centroids(&run(&translation, &x, true));
    check("RandomTranslation rows", &moved.iter().map(|(r, _)| r - 10.0).collect::<Vec<_>>(), (-4.2, 4.2));
    check("RandomTranslation columns", &moved.iter().map(|(_, c)| c - 16.0).collect::<Vec<_>>(), (-4.2, 4.2));
    // RandomZoom(0.2): zoom factors in [0.8, 1.2] (positive zooms out): the pixel's distance
    // from the centre scales by 1 / factor.
    let zoom: RandomZoom = layer("RandomZoom", json!({ "height_factor": 0.2, "fill_mode": constant }));
    let scales: Vec<f64> = centroids(&run(&zoom, &x, true)).iter().map(|(_, c)| 6.0 / (c - 10.0)).collect();
    check("RandomZoom(0.2) factor", &scales, (0.8, 1.2));
}
