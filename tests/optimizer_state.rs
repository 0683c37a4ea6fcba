//! Continuing training where Keras stopped: a model tf.keras or Keras 3 trained and saved (`model.save`,
//! its optimizer's state included) continues here as it continues in Keras after
//! `load_model` — not as it would with a fresh optimizer; and a model keras-tch saved after
//! that continues in that Keras from the same step count, as it continues here. For Adam, SGD
//! with momentum and RMSprop. The Keras side is scripts/keras_continue_training.py: its training
//! run by scripts/keras_fixtures.py (the fixture `continue_training`), its continuations of our
//! files by this test.

mod common;

use std::sync::atomic::AtomicBool;

use serde_json::Value;
use tch::Device;

use common::parity::read_tensor;
use common::{keras_fixture, keras_python, repo_root, scratch_dir};
use keras_tch::graph::optimizer_state::SavedOptimizerState;
use keras_tch::io::load_model;
use keras_tch::io::{save_model_h5, save_model_keras};
use keras_tch::train::compile::{CompileConfig, TrainingConfig};
use keras_tch::train::evaluate::evaluate;
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::job::{continue_saved_optimizer, keep_training_state};
use keras_tch::train::optimizer::Optimizer;

/// tf.keras's `.h5` (its `optimizer_weights`).
#[test]
fn training_continues_from_the_optimizer_state_tf_keras_saved() {
    continues_from_keras("tf_keras", "trained.h5", "continued.json");
}

/// Keras 3's `.keras` (its `optimizer/vars`).
#[test]
fn training_continues_from_the_optimizer_state_keras3_saved() {
    continues_from_keras("keras3", "trained.keras", "continued_keras3.json");
}

/// Keras (`keras`: tf_keras or keras3) trained and saved `file` per optimizer and wrote its
/// continuations to `report` (the fixture `continue_training`); the file continues here as
/// there, and what keras-tch saves after continues in the same Keras as here.
fn continues_from_keras(keras: &str, file: &str, report: &str) {
    let Some(fixture) = keras_fixture("continue_training") else { return };
    let Some(python) = keras_python() else { return };
    let dir = scratch_dir(&format!("optimizer-state-{keras}"));
    let io = fixture.join("io.h5");
    let (x, y) = (read_tensor(&io, "x"), read_tensor(&io, "y"));
    let (x_held, y_held) = (read_tensor(&io, "x_held"), read_tensor(&io, "y_held"));
    let (mut ours, mut converted) = (Vec::new(), Vec::new());
    for optimizer_name in ["adam", "sgd", "rmsprop"] {
        let (trained, folder) = (fixture.join(optimizer_name), dir.join(optimizer_name));
        std::fs::create_dir(&folder).unwrap();
        let keras: Value = serde_json::from_str(&std::fs::read_to_string(trained.join(report)).unwrap()).unwrap();
        let mut model = load_model(&trained.join(file), Device::Cpu).unwrap();
        let optimizer_name = format!("{optimizer_name} ({file})");
        let SavedOptimizerState::Restorable(state) = &model.optimizer_state else {
            panic!("{optimizer_name}: the saved optimizer state was not read: {:?}", model.optimizer_state)
        };
        assert_eq!(state.iterations, keras["iterations"].as_i64().unwrap(), "{optimizer_name}: the step count");
        // `convert` to the other format carries the state: Keras's own file as the other
        // Keras's, to continue there as it continued where it was saved.
        let other = folder.join(if file.ends_with(".keras") { "converted.h5" } else { "converted.keras" });
        if file.ends_with(".keras") {
            save_model_h5(&model, &other).unwrap();
        } else {
            save_model_keras(&model, &other).unwrap();
        }
        converted.push((optimizer_name.clone(), other, state.iterations, keras["restored"]["loss"].as_f64().unwrap()));
        let training = TrainingConfig::from_keras(model.training_config.as_ref().unwrap()).unwrap();
        let compile = CompileConfig::from_keras(model.training_config.as_ref().unwrap()).unwrap();
        let mut optimizer = Optimizer::new(training.optimizer);
        let said = continue_saved_optimizer(&model, &mut optimizer).unwrap();
        assert!(said.starts_with("Continuing from the model file's optimizer state"), "{optimizer_name}: {said}");

        let options = FitOptions { epochs: 1, batch_size: 32, shuffle: false, verbose: 0, ..Default::default() };
        let history = fit(&mut model, &compile, &mut optimizer, &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
        let loss = history.get("loss").unwrap()[0];
        let held = evaluate(&model, &compile, &x_held, &y_held, 32).unwrap().loss;
        let (restored, fresh) = (&keras["restored"], &keras["fresh"]);
        let keras_loss = restored["loss"].as_f64().unwrap();
        let keras_held = restored["held_loss"].as_f64().unwrap();
        let fresh_loss = fresh["loss"].as_f64().unwrap();
        println!("{optimizer_name}: loss {loss} (Keras {keras_loss}; fresh optimizer {fresh_loss}), held-out {held} (Keras {keras_held})");
        assert!((loss - keras_loss).abs() <= 0.002, "{optimizer_name}: continued loss {loss}, Keras's {keras_loss}");
        assert!((held - keras_held).abs() <= 0.03, "{optimizer_name}: held-out loss {held}, Keras's {keras_held}");
        assert!((loss - keras_loss).abs() < (loss - fresh_loss).abs(), "{optimizer_name}: as close to a fresh optimizer ({fresh_loss})");

        // Saved here after that epoch, for the other direction below.
        keep_training_state(&mut model, &compile, &optimizer);
        // In the format of the Keras that saved the file.
        let keras3 = file.ends_with(".keras");
        let saved = folder.join(if keras3 { "continued_here.keras" } else { "continued_here.h5" });
        if keras3 {
            save_model_keras(&model, &saved).unwrap();
        } else {
            save_model_h5(&model, &saved).unwrap();
        }
        ours.push((optimizer_name, saved, optimizer.iterations, training.optimizer, compile));
    }

    // The other way: the files saved here continue in Keras with their optimizers restored —
    // the same step counts, and the epoch keras-tch gives from them.
    let output = std::process::Command::new(&python)
        .arg(repo_root().join("scripts/keras_continue_training.py"))
        .arg("--continue")
        .args(ours.iter().map(|(_, file, ..)| file))
        .args(converted.iter().map(|(_, file, ..)| file))
        .arg("--io")
        .arg(&io)
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let in_keras: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let (in_keras, converted_in_keras) = in_keras.split_at(ours.len());
    for ((optimizer_name, file, iterations, keras_loss), in_keras) in converted.iter().zip(converted_in_keras) {
        assert_eq!(in_keras["iterations"].as_i64().unwrap(), *iterations, "{optimizer_name}: steps restored from {}", file.display());
        let loss = in_keras["loss"].as_f64().unwrap();
        println!("{optimizer_name}: converted to {}, continued {loss}; where it was saved {keras_loss}", file.display());
        assert!(
            (loss - keras_loss).abs() <= 0.002,
            "{optimizer_name}: {} continued to {loss}, the original to {keras_loss}",
            file.display()
        );
    }
    for ((optimizer_name, file, iterations, optimizer_config, compile), in_keras) in ours.into_iter().zip(in_keras) {
        assert_eq!(in_keras["iterations"].as_i64().unwrap(), iterations, "{optimizer_name}: steps Keras restored");
        let mut model = load_model(&file, Device::Cpu).unwrap();
        let mut optimizer = Optimizer::new(optimizer_config);
        continue_saved_optimizer(&model, &mut optimizer).unwrap();
        let options = FitOptions { epochs: 1, batch_size: 32, shuffle: false, verbose: 0, ..Default::default() };
        let history = fit(&mut model, &compile, &mut optimizer, &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
        let (loss, keras_loss) = (history.get("loss").unwrap()[0], in_keras["loss"].as_f64().unwrap());
        println!("{optimizer_name}: our file continued here {loss}, in Keras {keras_loss}");
        assert!((loss - keras_loss).abs() <= 0.002, "{optimizer_name}: our file continued: here {loss}, in Keras {keras_loss}");
    }
}
