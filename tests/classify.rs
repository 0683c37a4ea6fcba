//! Pretrained ImageNet ResNet50 as `keras.applications` runs it: `keras-tch classify` and
//! `keras-tch features` against what real Keras printed and computed for Keras-made ResNet50
//! files (both naming schemes, Keras 1/2 HDF5 layouts, Keras 3 .keras) on real photos
//! (fixture imagenet_pipeline; the weights are random with calibrated BatchNorm statistics,
//! since the real ImageNet files cannot be downloaded here).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::parity::{assert_close, read_tensor};
use common::{keras_fixture, scratch_dir, shared_data};
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode};
use keras_tch::io::npy::read_npy;
use keras_tch::layers::autocast::Precision;
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::applications::Pooling;
use keras_tch::models::pretrained::{imagenet_resnet50, Head};
use serde_json::Value;
use tch::{Device, Tensor};

/// The fixture's classified images, as paths (my_image.jpg from ../shared/data).
fn classified_images(fixture: &Path) -> Option<Vec<PathBuf>> {
    let list = std::fs::read_to_string(fixture.join("classify.txt")).unwrap();
    list.lines().map(|name| if name == "my_image.jpg" { shared_data(name) } else { Some(fixture.join("images").join(name)) }).collect()
}

fn keras_tch(args: &[&str], paths: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keras-tch")).args(args).args(paths).current_dir(common::repo_root()).output().expect("run keras-tch")
}

/// Keras's decode_predictions(top=5) rows for one file of the fixture, per image name.
fn keras_decoded(fixture: &Path, stem: &str) -> Value {
    let text = std::fs::read_to_string(fixture.join("decoded.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()[stem].clone()
}

/// Same classes in the same order, probabilities within 1e-4.
fn assert_same_top5(what: &str, ours: &Value, keras: &Value) {
    let (ours, keras) = (ours.as_array().unwrap(), keras.as_array().unwrap());
    assert_eq!(ours.len(), 5, "{what}: {ours:?}");
    for (rank, (o, k)) in ours.iter().zip(keras).enumerate() {
        assert_eq!((&o[0], &o[1]), (&k[0], &k[1]), "{what}: class at rank {rank}");
        let (po, pk) = (o[2].as_f64().unwrap(), k[2].as_f64().unwrap());
        assert!((po - pk).abs() <= 1e-4, "{what}: rank {rank} probability {po} vs Keras {pk}");
    }
}

/// `keras-tch classify --json` on every classified photo prints Keras's top-5 for each file
/// format and naming scheme.
#[test]
fn classify_prints_keras_top5_for_every_file_format() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(images) = classified_images(&fixture) else { return };
    for (file, stem) in [("keras_top.h5", "keras_top"), ("legacy_top.h5", "legacy_top"), ("model.keras", "model_keras")] {
        let weights = fixture.join(file);
        let output = keras_tch(&["classify", "--json", "--batch-size", "4", "--weights", weights.to_str().unwrap()], &images);
        assert!(output.status.success(), "{file}: {}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<Value> = String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), images.len(), "{file}: one line per image");
        let keras = keras_decoded(&fixture, stem);
        for (line, path) in lines.iter().zip(&images) {
            assert_eq!(line["image"], path.display().to_string());
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_same_top5(&format!("{file} {name}"), &line["predictions"], &keras[name]);
        }
    }
}

/// One image gives exactly Keras's printed line: `Predicted: [('n…', 'label', p), …]`.
#[test]
fn classify_prints_the_predicted_line() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let weights = fixture.join("keras_top.h5");
    let output = keras_tch(&["classify", "--weights", weights.to_str().unwrap()], &[photo]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let keras = &keras_decoded(&fixture, "keras_top")["my_image.jpg"];
    let expected_start = format!("Predicted: [('{}', '{}', 0.0", keras[0][0].as_str().unwrap(), keras[0][1].as_str().unwrap());
    assert!(stdout.starts_with(&expected_start), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(stdout.matches("('n").count(), 5, "{stdout}");
}

fn preprocessed(images: &[PathBuf]) -> Tensor {
    let arrays: Vec<Tensor> = images
        .iter()
        .map(|p| img_to_array(&load_img(p, Some((224, 224)), Interpolation::Nearest, &DecodeOptions::default()).unwrap()))
        .collect();
    preprocess_input(&Tensor::stack(&arrays, 0), PreprocessMode::Caffe)
}

/// All 1000 probabilities, not just the top 5, for each scheme.
#[test]
fn probabilities_match_keras_for_both_schemes() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(images) = classified_images(&fixture) else { return };
    let x = preprocessed(&images);
    for (file, stem) in [("keras_top.h5", "keras_top"), ("legacy_top.h5", "legacy_top"), ("model.keras", "model_keras")] {
        let pretrained = imagenet_resnet50(&fixture.join(file), None, Head::Classifier, [224, 224], Device::Cpu).unwrap();
        let keras = read_tensor(&fixture.join("outputs.h5"), &format!("probabilities/{stem}"));
        assert_close(file, &pretrained.model.predict(&x).unwrap(), &keras);
        // What predict/classify/features run: BatchNorm folded into the convolutions.
        let folded = pretrained.model.for_inference(Precision::Fp32);
        assert_eq!(folded.folded_batch_norms(), 53, "{file}");
        // Every convolution through oneDNN: 16 with their block's Add and ReLU, 33 with their
        // ReLU, the 4 projection shortcuts alone.
        assert_eq!(folded.fused_convolutions(), 53, "{file}");
        // pool1_pad goes into pool1_pool (its input is conv1_relu's).
        assert_eq!(folded.padded_max_pools(), 1, "{file}");
        assert_close(&format!("{file}, BatchNorm folded"), &folded.predict(&x).unwrap(), &keras);
        // Called again, the 16 3×3 convolutions run Winograd's algorithm.
        assert_close(&format!("{file}, Winograd"), &folded.predict(&x).unwrap(), &keras);
        assert_eq!(folded.winograd_runs(), 16, "{file}");
        assert_eq!(keras_tch::graph::fused_conv::fallbacks(), 0, "every fused convolution ran fused, its kernel packed");
    }
}

/// `--precision bf16`: its accuracy cost against Keras's float32, measured on the fixture's
/// photos (printed; BENCHMARKS.md reports it). The fixture's network has random weights and a
/// flat softmax (top-1 ≈ 0.1), where neighbouring classes are near-ties, so the checks are:
/// no probability moves by more than 0.03, and a top-1 class only changes where Keras's own
/// top two were within twice the largest change of each other.
#[test]
fn bf16_moves_probabilities_little_and_reorders_only_near_ties() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(images) = classified_images(&fixture) else { return };
    let x = preprocessed(&images);
    let pretrained = imagenet_resnet50(&fixture.join("keras_top.h5"), None, Head::Classifier, [224, 224], Device::Cpu).unwrap();
    let keras = read_tensor(&fixture.join("outputs.h5"), "probabilities/keras_top");
    let bf16 = pretrained.model.for_inference(Precision::Bf16);
    assert_eq!(bf16.fused_convolutions(), 53);
    let ours = bf16.predict(&x).unwrap();
    assert_eq!(keras_tch::graph::fused_conv::fallbacks(), 0, "every bfloat16 convolution ran fused, its kernel packed");
    assert_eq!(ours.kind(), tch::Kind::Float);
    let max_change = (&ours - &keras).abs().max().double_value(&[]);
    let top1_same = ours.argmax(1, false).eq_tensor(&keras.argmax(1, false));
    eprintln!(
        "bf16 vs Keras fp32 on {} photos: max |Δp| = {max_change:.2e} (largest p {:.3}), same top-1 for {}",
        keras.size()[0],
        keras.max().double_value(&[]),
        top1_same.sum(tch::Kind::Int64).int64_value(&[])
    );
    assert!(max_change < 0.03, "bf16 moved a probability by {max_change}");
    let (keras_top2, _) = keras.topk(2, 1, true, true);
    for image in 0..keras.size()[0] {
        if top1_same.int64_value(&[image]) != 0 {
            continue;
        }
        let margin = keras_top2.double_value(&[image, 0]) - keras_top2.double_value(&[image, 1]);
        assert!(margin < 2.0 * max_change, "image {image}: bf16 changed a top-1 class {margin} ahead of the next");
    }
}

/// include_top=False with pooling None / avg / max: Keras's features within 1e-4 relative; the
/// _notop files and a full classifier file (its top unused) both serve.
#[test]
fn features_match_keras_for_every_pooling() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(images) = classified_images(&fixture) else { return };
    let x = preprocessed(&images);
    let outputs = fixture.join("outputs.h5");
    for (pooling, name, shape) in [
        (Pooling::None, "none", vec![6, 7, 7, 2048]),
        (Some(PoolKind::Average), "avg", vec![6, 2048]),
        (Some(PoolKind::Max), "max", vec![6, 2048]),
    ] {
        let keras = read_tensor(&outputs, &format!("features/keras_notop_{name}"));
        for file in ["keras_notop.h5", "keras_top.h5"] {
            let pretrained = imagenet_resnet50(&fixture.join(file), None, Head::Features(pooling), [224, 224], Device::Cpu).unwrap();
            let inference = pretrained.model.for_inference(Precision::Fp32);
            let ours = inference.predict(&x).unwrap();
            assert_eq!(ours.size(), shape, "{file} pooling {name}");
            assert_close(&format!("{file} pooling {name}"), &ours, &keras);
            // Called again, through Winograd's algorithm.
            assert_close(&format!("{file} pooling {name}, Winograd"), &inference.predict(&x).unwrap(), &keras);
        }
    }
    let legacy =
        imagenet_resnet50(&fixture.join("legacy_notop.h5"), None, Head::Features(Some(PoolKind::Average)), [224, 224], Device::Cpu)
            .unwrap();
    assert_close("legacy_notop.h5 avg", &legacy.model.predict(&x).unwrap(), &read_tensor(&outputs, "features/legacy_notop_avg"));
}

/// `keras-tch features` writes the .npy and the names, in order.
#[test]
fn features_command_writes_npy_and_names() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(images) = classified_images(&fixture) else { return };
    let dir = scratch_dir("features-command");
    let output_path = dir.join("feats.npy");
    let weights = fixture.join("keras_notop.h5");
    let output = keras_tch(
        &["features", "--pooling", "avg", "--weights", weights.to_str().unwrap(), "--output", output_path.to_str().unwrap()],
        &images,
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let features = read_npy(&output_path).unwrap();
    assert_close("features .npy", &features, &read_tensor(&fixture.join("outputs.h5"), "features/keras_notop_avg"));
    let names = std::fs::read_to_string(dir.join("feats.txt")).unwrap();
    let expected: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(names.lines().collect::<Vec<_>>(), expected);
}
