//! Transfer learning: a Keras-made base with its top replaced, the head trained on cached
//! bottleneck features that equal the live model's, a cache reused by a second run and not by a
//! changed base, and the result saved as a Keras HDF5 that real Keras loads.

mod common;

use std::path::Path;
use std::process::Command;

use common::parity::assert_close;
use common::{keras_fixture, keras_python, repo_root, scratch_dir, shared_data};
use keras_tch::data::dataset::Dataset;
use keras_tch::data::folders::load_course_file;
use keras_tch::data::loader::Loading;
use keras_tch::graph::optimizer_state::SavedOptimizerState;
use keras_tch::graph::Model;
use keras_tch::imaging::{preprocess_input, PreprocessMode};
use keras_tch::layers::pooling::PoolKind;
use keras_tch::models::transfer::{load_base, with_new_head, NewHead};
use keras_tch::train::bottleneck::{base_fingerprint, cached_features, compute_features, head_model};
use keras_tch::train::freeze::{freeze, FreezeSpec};
use tch::{Device, Tensor};

/// The course ResNet50 that Keras saved, with a new two-class head, its base frozen.
fn cat_model(fixture: &Path) -> (Model, Vec<String>) {
    let base = load_base(&fixture.join("model.h5"), [64, 64], Device::Cpu).unwrap();
    assert!(!base.imagenet_checkpoint);
    let head = NewHead { pooling: PoolKind::Average, dropout: 0.2, classes: 2 };
    let (mut model, head_names, dropped) = with_new_head(base.model, None, &head).unwrap();
    assert_eq!(dropped, vec!["flatten".to_string(), "fc6".to_string()]);
    assert_eq!(head_names, vec!["global_average_pooling2d", "dropout", "dense"]);
    freeze(&mut model, &FreezeSpec { until: Some("avg_pool".into()), ..Default::default() }).unwrap();
    (model, head_names)
}

fn cat_images(count: i64) -> Option<Tensor> {
    let path = shared_data("train_catvnoncat.h5")?;
    let images = load_course_file(&path, "train").unwrap();
    Some(preprocess_input(&images.x.narrow(0, 0, count), PreprocessMode::Scale255))
}

#[test]
fn the_head_on_cached_features_computes_what_the_full_model_does() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(x) = cat_images(24) else { return };
    let (model, head) = cat_model(&fixture);
    let dir = scratch_dir("bottleneck-equal");
    let data = Dataset::from_tensors(&x, &Tensor::zeros([24], (tch::Kind::Int64, Device::Cpu)), "cats").unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (features, _, reused) =
        cached_features(&dir, "k", None, || compute_features(&model, &head[0], &data, 8, &Loading::default(), &stop)).unwrap();
    assert!(!reused);
    let (read_back, _, reused) = cached_features(&dir, "k", None, || unreachable!("the cache exists")).unwrap();
    assert!(reused);
    assert!(read_back.equal(&features), "the cache file holds the computed features exactly");
    let head_only = head_model(&model, &head[2], 0.2, Device::Cpu).unwrap();
    let on_features = head_only.predict(&read_back).unwrap();
    let live = model.predict(&x).unwrap();
    let scale = live.abs().max().double_value(&[]);
    let diff = (on_features - &live).abs().max().double_value(&[]);
    assert!(diff <= 1e-5 * scale, "head on cached features vs full model: {diff:e} (scale {scale})");
}

#[test]
fn a_changed_base_gets_a_different_fingerprint() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let (model, head) = cat_model(&fixture);
    let before = base_fingerprint(&model, &head[0]).unwrap().hex();
    assert_eq!(before, base_fingerprint(&model, &head[0]).unwrap().hex(), "stable");
    let kernel = model.keras_weight("res5c_branch2c", "kernel").unwrap();
    model.set_keras_weight("res5c_branch2c", "kernel", &(kernel * 1.0001)).unwrap();
    assert_ne!(before, base_fingerprint(&model, &head[0]).unwrap().hex());
}

fn transfer(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch")).arg("transfer").args(args).current_dir(repo_root()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The command end to end on the course's cat/non-cat set: the second run reuses the cached
/// features; the saved model loads in tf.keras and gives our predictions.
#[test]
fn transfer_command_caches_features_and_saves_a_keras_model() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(data) = shared_data("train_catvnoncat.h5") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir("transfer-command");
    let save = dir.join("cat.h5");
    let base = fixture.join("model.h5");
    let (cache, run) = (dir.join("cache"), dir.join("run"));
    let args = [
        "--base",
        base.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "3",
        "--limit",
        "64",
        "--verbose",
        "2",
        "--device",
        "cpu",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
    ];
    let first = transfer(&args);
    assert!(first.contains("Computed bottleneck features once"), "{first}");
    assert!(first.contains("Test Accuracy = "), "{first}");
    let second = transfer(&args);
    assert!(second.contains("Reused cached bottleneck features"), "{second}");
    assert_eq!(std::fs::read_to_string(dir.join("cat.classes.txt")).unwrap(), "non-cat\ncat\n");

    // tf.keras loads the saved model and computes what we compute.
    let model = keras_tch::io::load_model(&save, Device::Cpu).unwrap();
    let x = cat_images(8).unwrap();
    let io = dir.join("io.h5");
    let file = hdf5::File::create(&io).unwrap();
    let values: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
    file.new_dataset::<f32>().shape([8, 64, 64, 3]).create("x").unwrap().write_raw(&values).unwrap();
    drop(file);
    let args = ["--loader".as_ref(), "tf_keras".as_ref(), "--model".as_ref(), save.as_os_str()];
    let (keras_y, _) = common::parity::keras_check(&python, &args, &io, &dir.join("y.h5"));
    assert_close("the transferred model in tf.keras", &model.predict(&x).unwrap(), &keras_y);
}

/// The lecture's third regime: after the head, unfreeze the top stage and fine-tune at a lower
/// rate. Stage 5's convolutions move; its BatchNorm (kept in inference mode) and stages 1-4 do
/// not; augmentation turns the feature cache off.
#[test]
fn fine_tuning_moves_only_the_unfrozen_stage() {
    use keras_tch::train::augment::Augmentation;
    use keras_tch::train::transfer::{train_transfer, HeadLayers, TransferData, TransferOptions};

    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(x) = cat_images(32) else { return };
    let (mut model, head) = cat_model(&fixture);
    let labels = Tensor::from_slice(&[0i64, 1].repeat(16)).one_hot(2).to_kind(tch::Kind::Float);
    let watched =
        [("res5c_branch2c", "kernel"), ("bn5c_branch2c", "moving_mean"), ("bn5c_branch2c", "gamma"), ("res4f_branch2c", "kernel")];
    let before: Vec<Tensor> = watched.iter().map(|(l, w)| model.keras_weight(l, w).unwrap()).collect();
    let data = TransferData::from_tensors(&x, &labels, None, "test").unwrap();
    let dir = scratch_dir("fine-tune");
    let options = TransferOptions {
        epochs: 1,
        batch_size: 16,
        verbose: 0,
        cache_dir: Some(dir.to_path_buf()),
        fine_tune_stages: 1,
        fine_tune_epochs: 1,
        fine_tune_learning_rate: 1e-4,
        augmentation: Augmentation { flip: true, crop: 0.1, seed: 1, ..Default::default() },
        ..Default::default()
    };
    let head_layers = HeadLayers { pool: head[0].clone(), dense: head[2].clone(), dropout: 0.2 };
    let report = train_transfer(&mut model, &head_layers, &data, &options, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    assert!(report.cache.is_none(), "augmentation means no feature cache");
    assert!(report.fine_tune_history.is_some());
    let after: Vec<Tensor> = watched.iter().map(|(l, w)| model.keras_weight(l, w).unwrap()).collect();
    assert!(!before[0].equal(&after[0]), "stage 5 convolution fine-tuned");
    assert!(before[1].equal(&after[1]) && before[2].equal(&after[2]), "stage 5 BatchNorm stays frozen");
    assert!(before[3].equal(&after[3]), "stage 4 stays frozen");
}

/// The head trained on cached features with the whole base frozen: every base tensor (weights
/// and BatchNorm statistics) bit-identical afterwards, the new Dense changed.
#[test]
fn training_the_head_leaves_the_frozen_base_bit_identical() {
    use keras_tch::train::transfer::{train_transfer, HeadLayers, TransferData, TransferOptions};

    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(x) = cat_images(32) else { return };
    let (mut model, head) = cat_model(&fixture);
    let snapshot = |model: &Model| -> Vec<(String, String, Tensor)> {
        model
            .layers()
            .iter()
            .flat_map(|n| n.layer.weights().into_iter().map(|w| (n.name.clone(), w.name.to_string(), w.tensor.copy())))
            .collect()
    };
    let before = snapshot(&model);
    let labels = Tensor::from_slice(&[0i64, 1].repeat(16)).one_hot(2).to_kind(tch::Kind::Float);
    let data = TransferData::from_tensors(&x, &labels, None, "frozen-base test").unwrap();
    let cache = scratch_dir("frozen-base");
    let options = TransferOptions {
        epochs: 3,
        batch_size: 16,
        learning_rate: 1e-2,
        verbose: 0,
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    };
    let head_layers = HeadLayers { pool: head[0].clone(), dense: head[2].clone(), dropout: 0.2 };
    let report = train_transfer(&mut model, &head_layers, &data, &options, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    assert!(report.cache.is_some(), "a frozen base trains the head on cached features");
    for ((layer, weight, old), (_, _, new)) in before.iter().zip(snapshot(&model)) {
        if *layer == head[2] {
            assert!(!old.equal(&new), "the head's {weight} changed");
        } else {
            assert!(old.equal(&new), "base {layer}/{weight} changed");
        }
    }
}

/// A class-per-folder dataset (like `image_dataset_from_directory`): sorted class names, a
/// seeded validation split, images read at the base's input size; the run folder gets the
/// History and curves.
#[test]
fn transfer_reads_image_folders() {
    use keras_tch::data::folders::ImageFolder;

    let Some(course) = keras_fixture("h5_course_resnet50") else { return };
    let Some(images) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("transfer-folders");
    let data = dir.join("data");
    let classes = [
        ("tabby", ["photo.png", "photo.bmp", "photo.gif", "rgba.png"]),
        ("alley", ["grey.png", "grey.jpg", "small_420.jpg", "progressive.jpg"]),
    ];
    for (class, files) in classes {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for file in files {
            std::fs::copy(images.join("images").join(file), data.join(class).join(file)).unwrap();
        }
    }
    let folder = ImageFolder::scan(&data).unwrap();
    assert_eq!(folder.classes, vec!["alley", "tabby"], "sorted class names");
    let (train, validation) = folder.split(0.25, 3).unwrap();
    assert_eq!((train.len(), validation.len()), (6, 2));
    assert_eq!(folder.split(0.25, 3).unwrap().1, validation, "the same seed gives the same split");
    assert!(validation.iter().all(|v| !train.contains(v)));

    let run = dir.join("run");
    let save = dir.join("out.h5");
    let base = course.join("model.h5");
    let stdout = transfer(&[
        "--base",
        base.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--validation-split",
        "0.25",
        "--seed",
        "3",
        "--epochs",
        "2",
        "--verbose",
        "0",
        "--device",
        "cpu",
        "--run-dir",
        run.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
    ]);
    assert!(stdout.contains("Data: 6 training image(s), 2 validation, classes [\"alley\", \"tabby\"]"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("out.classes.txt")).unwrap(), "alley\ntabby\n");
    for file in ["head_history.json", "head_history.csv", "head_curves.png"] {
        assert!(run.join(file).exists(), "{file} written");
    }
}

/// An ImageNet checkpoint (weights only) as the base: built as ResNet50 without top at the
/// data's size, its classifier reported unused, the new head on conv5_block3_out.
#[test]
fn an_imagenet_checkpoint_is_a_base() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let base = load_base(&fixture.join("keras_top.h5"), [64, 64], Device::Cpu).unwrap();
    assert!(base.imagenet_checkpoint);
    let report = base.report.as_ref().unwrap().to_string();
    assert!(report.contains("not used from the file: predictions"), "{report}");
    let head = NewHead { pooling: PoolKind::Max, dropout: 0.0, classes: 4 };
    let (model, head_names, dropped) = with_new_head(base.model, None, &head).unwrap();
    assert!(dropped.is_empty(), "include_top=False has nothing to drop: {dropped:?}");
    assert_eq!(model.node(model.layer(&head_names[0]).unwrap().inbound[0]).name, "conv5_block3_out");
    assert_eq!(model.predict(&Tensor::zeros([2, 64, 64, 3], (tch::Kind::Float, Device::Cpu))).unwrap().size(), vec![2, 4]);
}

/// Keras's callbacks and class weights reach both phases: EarlyStopping ends each phase at its
/// second epoch (no loss improves by a min_delta of 1e9, and Keras never stops after the first);
/// 'balanced' weights are printed from the labels; ModelCheckpoint runs only where the whole
/// model trains (fine-tuning), saying so for the head on cached features.
#[test]
fn transfer_command_takes_callbacks_and_class_weights() {
    let Some(fixture) = keras_fixture("h5_course_resnet50") else { return };
    let Some(data) = shared_data("train_catvnoncat.h5") else { return };
    let dir = scratch_dir("transfer-callbacks");
    let (save, base, run) = (dir.join("cat.h5"), fixture.join("model.h5"), dir.join("run"));
    let checkpoint = format!("{}/ft.{{epoch:02d}}.h5", dir.display());
    let phases = "--epochs 4 --fine-tune-stages 1 --fine-tune-epochs 3 --limit 64 --verbose 2 --device cpu --class-weight balanced";
    let mut args: Vec<&str> = phases.split(' ').collect();
    let paths = [("--base", &base), ("--data", &data), ("--run-dir", &run), ("--save", &save)];
    for (flag, path) in &paths {
        args.extend([*flag, path.to_str().unwrap()]);
    }
    args.extend(["--model-checkpoint", &checkpoint]);
    args.extend(["--early-stopping", "monitor=loss,min_delta=1000000000,verbose=1"]);
    let stdout = transfer(&args);
    assert!(stdout.contains("Class weights (balanced): 0: "), "{stdout}");
    assert!(stdout.contains("note: ModelCheckpoint does not run while the head trains on cached features"), "{stdout}");
    assert_eq!(stdout.matches("Epoch 2: early stopping").count(), 2, "one per phase:\n{stdout}");
    let epochs = |phase: &str| std::fs::read_to_string(run.join(format!("{phase}_history.csv"))).unwrap().lines().count() - 1;
    assert_eq!((epochs("head"), epochs("fine_tune")), (2, 2));
    let saved = |epoch: u32| dir.join(format!("ft.{epoch:02}.h5")).exists();
    assert!(saved(1) && saved(2) && !saved(3), "the fine-tuning phase's two epochs were saved");
    // A full-model save carries the optimizer's state, as Keras's model.save does.
    let checkpointed = keras_tch::io::load_model(&dir.join("ft.02.h5"), Device::Cpu).unwrap();
    let SavedOptimizerState::Restorable(state) = &checkpointed.optimizer_state else {
        panic!("ModelCheckpoint's file has no usable optimizer state: {:?}", checkpointed.optimizer_state)
    };
    assert_eq!(state.iterations, 4, "two fine-tuning epochs of two steps");
    let saved = keras_tch::io::load_model(&save, Device::Cpu).unwrap();
    let SavedOptimizerState::Restorable(state) = &saved.optimizer_state else {
        panic!("the saved model has no usable optimizer state: {:?}", saved.optimizer_state)
    };
    assert_eq!(state.iterations, 4, "the fine-tuning optimizer's");
}
