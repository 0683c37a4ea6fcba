//! Every program in notebooks-ported/ runs end to end in a quick mode and prints the notebook's
//! key lines: shapes, parameter totals, `Loss =` / `Test Accuracy =`, `Predicted: [`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{keras_fixture, repo_root, shared_data};

/// target/<profile>/examples/<name>, next to this test's own binary (cargo test builds the
/// examples; a run of this test file alone builds them first).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let path = deps.parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO")).args(["build", "--examples"]).current_dir(repo_root()).status().unwrap();
        assert!(status.success(), "cargo build --examples");
    }
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example(name)).args(args).current_dir(repo_root()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn assert_lines(name: &str, stdout: &str, expected: &[&str]) {
    for line in expected {
        assert!(stdout.contains(line), "{name}: missing '{line}' in:\n{stdout}");
    }
}

#[test]
fn residual_networks() {
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let stdout = run("residual_networks", &["--epochs", "1", "--limit", "32", photo.to_str().unwrap()]);
    assert_lines(
        "residual_networks",
        &stdout,
        &[
            "out = [",
            "Loss computed as Keras 2.0 did when the course ran",
            "number of training examples = 32",
            "X_train shape: (32, 64, 64, 3)",
            "Y_train shape: (32, 6)",
            "Loss = ",
            "Test Accuracy = ",
            "Input image shape: (1, 64, 64, 3)",
            "class prediction vector [p(0), p(1), p(2), p(3), p(4), p(5)] = ",
            "Total params: 23,600,006",
        ],
    );
    assert_eq!(stdout.matches("out = [").count(), 2, "both block tests");
}

#[test]
fn keras_resnet50() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let (top, notop) = (fixture.join("keras_top.h5"), fixture.join("keras_notop.h5"));
    let stdout = run("keras_resnet50", &["--weights", top.to_str().unwrap(), "--notop", notop.to_str().unwrap(), photo.to_str().unwrap()]);
    assert_lines(
        "keras_resnet50",
        &stdout,
        &["Total params: 42,020,712", "Input image shape: (1, 224, 224, 3)", "Predicted: [('n", "(1, 7, 7, 2048)"],
    );
}

#[test]
fn resnet18_34() {
    let stdout = run("resnet18_34", &[]);
    assert_lines(
        "resnet18_34",
        &stdout,
        &[
            "Total params: 12053608 (45.98 MB)",
            " sequential_10 (Sequential)  (None, 7, 7, 512)         8662016   ",
            "Total params: 12,053,608",
            "Total params: 22,735,912",
            "output shape for a batch of 2: (2, 1000)",
        ],
    );
}

#[test]
fn happy_house() {
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let stdout = run("happy_house", &["--epochs", "1", photo.to_str().unwrap()]);
    assert_lines(
        "happy_house",
        &stdout,
        &["X_train shape: (", "Y_train shape: (", "Loss = ", "Test Accuracy = ", "[[", "Model: \"HappyModel\"", "plot_model: "],
    );
}

#[test]
fn case_studies() {
    let stdout = run("case_studies", &[]);
    assert_lines("case_studies", &stdout, &["Total params: 138,357,544", "120,422,400 multiplications", "= 12,443,648 multiplications"]);
    assert_eq!(stdout.matches("Total params: ").count(), 5);
}

#[test]
fn transfer_learning() {
    // The course ResNet50 Keras saved, as the pretrained base (the program's own pretraining,
    // one epoch in quick mode, is what `--base` replaces).
    let Some(base) = keras_fixture("h5_course_resnet50") else { return };
    let _ = std::fs::remove_dir_all(repo_root().join("runs/transfer_learning-quick"));
    let stdout = run("transfer_learning", &["--quick", "--base", base.join("model.h5").to_str().unwrap()]);
    assert_lines("transfer_learning", &stdout, &["Source task: classes", "bottleneck features cached in", "regime", "val acc"]);
    assert_eq!(stdout.matches("Test Accuracy = ").count(), 4, "four regimes evaluated");
}
