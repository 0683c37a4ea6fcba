//! Class-per-folder datasets: the files Keras's `image_dataset_from_directory` lists and splits
//! (checked against real Keras), and streaming batches that equal reading the images one by one,
//! whatever the number of worker threads.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{keras_fixture, keras_python, repo_root, scratch_dir};
use keras_tch::data::course::load_split;
use keras_tch::data::course_file::CourseFileSource;
use keras_tch::data::dataset::{LabelMode, SampleSource};
use keras_tch::data::folders::{folder_dataset, ImageFolder};
use keras_tch::data::loader::Loading;
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, ImageReading, Interpolation, PreprocessMode};
use tch::Tensor;

/// A small class-per-folder dataset from the fixture images: nested folders, upper-case
/// extensions, a hidden folder, and a format image_dataset_from_directory does not read.
fn make_folder(dir: &Path, images: &Path) -> PathBuf {
    let root = dir.join("data");
    let copy = |from: &str, to: &str| {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(images.join(from), to).unwrap();
    };
    for class in ["dogs", "cats", "birds"] {
        for i in 0..7 {
            copy(
                if i % 2 == 0 { "photo.png" } else { "small_420.jpg" },
                &format!("{class}/img{i}.{}", if i % 2 == 0 { "png" } else { "jpg" }),
            );
        }
        copy("grey.jpg", &format!("{class}/sub folder/a.JPG"));
        copy("photo.bmp", &format!("{class}/sub/b.bmp"));
        copy("photo.gif", &format!("{class}/sub/deeper/c.gif"));
        copy("photo.tiff", &format!("{class}/skipped.tiff"));
    }
    copy("photo.png", ".hidden/x.png");
    root
}

fn relative(paths: impl IntoIterator<Item = PathBuf>, root: &Path) -> Vec<String> {
    paths.into_iter().map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn folder_splits_are_image_dataset_from_directory_s() {
    let Some(images) = keras_fixture("imagenet_pipeline") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir("dataset-split");
    let root = make_folder(&dir, &images.join("images"));
    let folder = ImageFolder::scan(&root).unwrap();
    let cases = [(0.2, 1337u64), (0.5, 7), (0.3, 4_000_000_000)];
    let output = Command::new(&python)
        .arg(repo_root().join("scripts/keras_dataset_split.py"))
        .arg(&root)
        .args(cases.iter().flat_map(|(fraction, seed)| [fraction.to_string(), seed.to_string()]))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let splits: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(splits.len(), cases.len(), "one split per case");
    for ((fraction, seed), keras) in cases.into_iter().zip(splits) {
        let keras_list = |version: &str, subset: &str| -> Vec<String> {
            let paths = keras[version][subset].as_array().unwrap().iter().map(|p| PathBuf::from(p.as_str().unwrap()));
            relative(paths, &root)
        };
        assert_eq!(folder.classes, keras["class_names"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect::<Vec<_>>());
        let (train, validation) = folder.split(fraction, seed).unwrap();
        let ours = |files: Vec<(PathBuf, i64)>| relative(files.into_iter().map(|(p, _)| p), &root);
        let (train, validation) = (ours(train), ours(validation));
        assert_eq!(train.len() + validation.len(), 30, "10 images of 3 classes; .tiff and the hidden folder skipped");
        for version in ["keras3", "tf_keras"] {
            assert_eq!(train, keras_list(version, "training"), "{version} training files, fraction {fraction}, seed {seed}");
            assert_eq!(validation, keras_list(version, "validation"), "{version} validation files, fraction {fraction}, seed {seed}");
        }
    }
}

#[test]
fn streamed_batches_equal_the_images_read_one_by_one() {
    let Some(images) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("dataset-stream");
    let root = make_folder(&dir, &images.join("images"));
    let reading = ImageReading::new((20, 24), Interpolation::Bilinear);
    let data = folder_dataset(&root, reading).unwrap().with_preprocessing(PreprocessMode::Caffe).with_label_mode(LabelMode::Categorical);
    let folder = ImageFolder::scan(&root).unwrap();
    let expected: Vec<Tensor> = folder
        .files
        .iter()
        .map(|(path, _)| {
            preprocess_input(
                &img_to_array(&load_img(path, Some((20, 24)), Interpolation::Bilinear, &DecodeOptions::default()).unwrap()),
                PreprocessMode::Caffe,
            )
        })
        .collect();
    let expected = Tensor::stack(&expected, 0);
    let order: Vec<usize> = (0..data.len()).rev().collect();
    for loading in [Loading::on_this_thread(), Loading { workers: 3, prefetch: 2 }, Loading { workers: 1, prefetch: 1 }] {
        let batches: Vec<(Tensor, Tensor)> = data.batches(Some(&order), 7, 0, &loading).map(Result::unwrap).collect();
        assert_eq!(batches.len(), 5, "30 images in batches of 7");
        let x = Tensor::cat(&batches.iter().map(|b| b.0.shallow_clone()).collect::<Vec<_>>(), 0);
        let y = Tensor::cat(&batches.iter().map(|b| b.1.shallow_clone()).collect::<Vec<_>>(), 0);
        let reversed = Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>());
        assert!(x.equal(&expected.index_select(0, &reversed)), "{loading:?}: the images, in the order asked for");
        let labels: Vec<i64> = Vec::try_from(y.argmax(-1, false)).unwrap();
        let expected_labels: Vec<i64> = order.iter().map(|&i| folder.files[i].1).collect();
        assert_eq!(labels, expected_labels, "{loading:?}: one-hot labels");
    }
}

#[test]
fn a_broken_image_stops_the_pass_with_its_name() {
    let Some(images) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("dataset-broken");
    let root = make_folder(&dir, &images.join("images"));
    let broken = root.join("cats/img3.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff not really a JPEG").unwrap();
    let reading = ImageReading::new((8, 8), Interpolation::Nearest).with_crop_to_aspect_ratio(true);
    let data = folder_dataset(&root, reading).unwrap();
    for loading in [Loading::on_this_thread(), Loading { workers: 2, prefetch: 3 }] {
        let results: Vec<_> = data.batches(None, 4, 0, &loading).collect();
        let errors: Vec<String> = results.iter().filter_map(|r| r.as_ref().err()).map(|e| format!("{e:#}")).collect();
        assert_eq!(errors.len(), 1, "{loading:?}: one batch holds the broken file");
        assert!(errors[0].contains("img3.jpg"), "{loading:?}: {}", errors[0]);
        // A consumer that stops at the error drops the pass: the workers must end, not hang.
        let mut pass = data.batches(None, 4, 0, &loading);
        assert!(pass.next().unwrap().is_ok());
        drop(pass);
    }
}

/// `keras-tch train --data DIR`: Keras's listing and split messages, an epoch with validation,
/// and the trained model saved.
#[test]
fn train_command_reads_an_image_folder() {
    let Some(images) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("dataset-train-cli");
    let root = make_folder(&dir, &images.join("images"));
    let save = dir.join("model.h5");
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["train", "--arch", "resnet18", "--image-size", "32,32", "--validation-split", "0.2", "--seed", "5"])
        .args(["--epochs", "1", "--batch-size", "8", "--verbose", "2", "--device", "cpu", "--workers", "2", "--data"])
        .arg(&root)
        .arg("--root")
        .arg(&dir)
        .arg("--save")
        .arg(&save)
        .arg("--report")
        .arg(dir.join("train-report"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("Found 30 files belonging to 3 classes; 24 for training, 6 for validation."), "{stdout}");
    let train_report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("train-report/report.json")).unwrap()).unwrap();
    assert_eq!(train_report["classification_report"]["macro avg"]["support"], 6, "the report is on the 6 validation images");
    assert!(stdout.contains("Epoch 1/1\n - ") && stdout.contains(" - val_accuracy: "), "{stdout}");
    assert!(stdout.contains("Test Accuracy = "), "{stdout}");
    let model = keras_tch::io::load_model(&save, tch::Device::Cpu).unwrap();
    assert_eq!(model.node(model.inputs()[0]).output_shape, [32, 32, 3]);

    // `evaluate` reads the same folder at the saved model's input size, with its compile.
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["evaluate", "--device", "cpu", "--json", "--model"])
        .arg(&save)
        .arg("--data")
        .arg(&root)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let accuracy = result["accuracy"].as_f64().unwrap();
    assert!(result["loss"].as_f64().unwrap().is_finite() && (0.0..=1.0).contains(&accuracy), "{result}");
    assert!((accuracy * 30.0 - (accuracy * 30.0).round()).abs() < 1e-9, "a fraction of the 30 images: {result}");

    // The report: scikit-learn's layout on stdout, the files written, mistakes named by file.
    let report_dir = dir.join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["evaluate", "--device", "cpu", "--top-k", "2", "--model"])
        .arg(&save)
        .arg("--data")
        .arg(&root)
        .arg("--report")
        .arg(&report_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("precision    recall  f1-score   support") && stdout.contains("weighted avg"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["class_names"], serde_json::json!(["birds", "cats", "dogs"]));
    let reported = report["classification_report"]["accuracy"].as_f64().unwrap();
    assert!((reported - accuracy).abs() < 1e-9, "the report's accuracy {reported} is evaluate's {accuracy}");
    for mistake in report["most_confident_mistakes"].as_array().unwrap() {
        assert!(mistake["file"].as_str().unwrap().starts_with(root.to_str().unwrap()), "{mistake}");
    }
    assert!(report_dir.join("confusion_matrix.png").exists() && report_dir.join("report.txt").exists());
}

/// A course file read batch by batch (hyperslabs, in a reading process) gives the images and
/// labels of the whole split, in the order asked; a sample past the end is an error naming it.
#[test]
fn course_file_batches_equal_the_whole_split() {
    let Some(path) = common::shared_data("test_signs.h5") else { return };
    let (split, classes) = load_split(&path, "test").unwrap();
    let (source, file_classes) = CourseFileSource::open(&path, "test").unwrap();
    assert_eq!((source.len(), file_classes), (120, classes));
    let indices = [119usize, 0, 1, 2, 57, 58, 3];
    let (x, y) = source.read(&indices).unwrap();
    let picked = Tensor::from_slice(&indices.map(|i| i as i64));
    assert!(x.equal(&split.pixel_values().index_select(0, &picked)), "images differ from the whole split's");
    let labels: Vec<i64> = Vec::try_from(y).unwrap();
    assert_eq!(labels, indices.map(|i| split.y[i]));
    let error = source.read(&[3, 120]).unwrap_err();
    assert!(format!("{error:#}").contains("sample 120 asked of 'test_set_x', which holds 120"), "{error:#}");
}
