//! The command line under hostile or unlucky conditions: outputs that are inputs, devices or
//! FIFOs; inputs that are FIFOs or devices; a full disk; Ctrl-C and SIGTERM; flags that cannot
//! mean anything; hand-edited checkpoints. Nothing may lose a file, hang, panic or print a
//! silently wrong number. Each test is one defect class of issue 14.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{keras_fixture, scratch_dir, shared_data};
use keras_tch::io::npy::write_npy;
use tch::{Device, Kind, Tensor};

fn keras_tch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keras-tch"))
}

/// Run to completion, but never longer than `limit` (a hang is a failure, not a stuck CI).
fn run_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("{command:?} did not finish within {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Files the atomic writer would leave behind if it failed to clean up.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".keras-tch-") || n.starts_with(".tmp-"))
        .collect()
}

/// The HappyModel fixture copied into `dir`, and `n` images for it as `.npy`.
fn happy_model_and_input(dir: &Path, n: i64) -> Option<(PathBuf, PathBuf)> {
    model_and_input("h5_happy", dir, n)
}

/// A 64×64×3 model fixture copied into `dir`, and `n` random images for it as `.npy`.
fn model_and_input(fixture: &str, dir: &Path, n: i64) -> Option<(PathBuf, PathBuf)> {
    let fixture = keras_fixture(fixture)?;
    let model = dir.join("model.h5");
    std::fs::copy(fixture.join("model.h5"), &model).unwrap();
    let x = dir.join("x.npy");
    write_npy(&x, &Tensor::rand([n, 64, 64, 3], (Kind::Float, Device::Cpu))).unwrap();
    Some((model, x))
}

fn predict(model: &Path, input: &Path, output: &Path) -> Command {
    let mut command = keras_tch();
    command.args(["predict", "--device", "cpu", "--model"]).arg(model).arg("--input").arg(input).arg("--output").arg(output);
    command
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = scratch_dir("output-is-input");
    let Some((model, x)) = happy_model_and_input(&dir, 2) else { return };
    let alias = dir.join("alias.npy");
    std::os::unix::fs::symlink(&x, &alias).unwrap();
    for target in [&model, &x, &alias] {
        let before = (std::fs::read(&model).unwrap(), std::fs::read(&x).unwrap());
        let output = run_within(predict(&model, &x, target), Duration::from_secs(120));
        assert!(!output.status.success(), "predict --output {} succeeded", target.display());
        assert!(stderr(&output).contains("refusing to write"), "{}", stderr(&output));
        assert_eq!(before, (std::fs::read(&model).unwrap(), std::fs::read(&x).unwrap()), "an input changed");
    }

    // features: the output may be neither a photo nor the names file.
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let image = dir.join("photo.jpg");
    std::fs::copy(&photo, &image).unwrap();
    let before = std::fs::read(&image).unwrap();
    for (output, names) in [(&image, dir.join("names.txt")), (&dir.join("f.npy"), dir.join("f.npy")), (&dir.join("f.npy"), image.clone())] {
        let mut command = keras_tch();
        command
            .args(["features", "--pooling", "avg", "--weights"])
            .arg(&model)
            .arg("--output")
            .arg(output)
            .arg("--names")
            .arg(&names)
            .arg(&image);
        let result = run_within(command, Duration::from_secs(120));
        assert!(!result.status.success());
        let message = stderr(&result);
        assert!(message.contains("refusing to write over the input image") || message.contains("the same file"), "{message}");
        assert_eq!(std::fs::read(&image).unwrap(), before, "the photo changed");
    }
}

#[test]
fn an_output_that_is_a_fifo_or_a_device_is_never_replaced() {
    let dir = scratch_dir("output-fifo");
    let Some((model, x)) = happy_model_and_input(&dir, 2) else { return };
    let fifo = dir.join("out.npy");
    mkfifo(&fifo);
    let output = run_within(predict(&model, &x, &fifo), Duration::from_secs(120));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("FIFO"), "{}", stderr(&output));
    assert!(is_fifo(&fifo), "the FIFO was replaced");
    // A character device (as root; /dev/null's numbers, in the scratch folder, never the real one).
    let device = dir.join("null");
    if Command::new("mknod").arg(&device).args(["c", "1", "3"]).status().is_ok_and(|s| s.success()) {
        let output = run_within(predict(&model, &x, &device), Duration::from_secs(120));
        assert!(stderr(&output).contains("character device"), "{}", stderr(&output));
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&device).unwrap().file_type().is_char_device(), "the device was replaced");
    }
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn fifos_and_devices_as_inputs_are_refused_without_hanging() {
    let dir = scratch_dir("input-fifo");
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let weights = fixture.join("keras_top.h5");
    let fifo = dir.join("photo.jpg");
    mkfifo(&fifo);
    let zero = dir.join("zero.jpg");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for input in [&fifo, &zero] {
        let mut command = keras_tch();
        command.args(["classify", "--device", "cpu", "--weights"]).arg(&weights).arg(input);
        let output = run_within(command, Duration::from_secs(120));
        assert!(!output.status.success());
        assert!(stderr(&output).contains("not a regular file"), "{}", stderr(&output));
    }
    // In a walked folder: skipped with a warning, the real photo still classified.
    let folder = dir.join("photos");
    std::fs::create_dir(&folder).unwrap();
    mkfifo(&folder.join("a_fifo.jpg"));
    std::fs::copy(fixture.join("images/photo.bmp"), folder.join("b_photo.bmp")).unwrap();
    let mut command = keras_tch();
    command.args(["classify", "--device", "cpu", "--weights"]).arg(&weights).arg(&folder);
    let output = run_within(command, Duration::from_secs(120));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("warning: skipping") && stderr(&output).contains("a_fifo.jpg"), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).matches("Predicted:").count(), 1);
    // A FIFO as the model file.
    let model_fifo = dir.join("model.h5");
    mkfifo(&model_fifo);
    let mut command = keras_tch();
    command.args(["inspect"]).arg(&model_fifo);
    let output = run_within(command, Duration::from_secs(60));
    assert!(!output.status.success() && stderr(&output).contains("FIFO"), "{}", stderr(&output));
}

/// `command` under a file-size limit of `kib` KiB (RLIMIT_FSIZE): writes past it fail with
/// EFBIG, exactly as they fail with ENOSPC on a full disk. SIGXFSZ is ignored so the write
/// returns the error instead of killing the process.
fn with_file_size_limit(kib: u64, command: &Command) -> Command {
    let mut limited = Command::new("bash");
    limited.arg("-c").arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$@\"")).arg("limited").arg(command.get_program());
    limited.args(command.get_args());
    limited
}

#[test]
fn a_full_disk_while_saving_fails_cleanly_and_keeps_the_old_file() {
    // HDF5 writes its last metadata only when the file is closed, so a disk that fills in the
    // last few KB failed silently before (exit 0, a truncated file). The happy model's small
    // files (the .h5 is 175 KiB) fill a disk as the course ResNet50's 95 MB do, in less time.
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let dir = scratch_dir("disk-full");
    let convert = |output: &Path| {
        let mut convert = keras_tch();
        convert.args(["convert", "--model"]).arg(fixture.join("model.h5")).arg(output);
        convert
    };
    for output_name in ["out.h5", "out.keras", "out.safetensors", "out.weights.h5"] {
        let reference = dir.join(format!("reference-{output_name}"));
        assert!(run_within(convert(&reference), Duration::from_secs(300)).status.success());
        let full_kib = std::fs::metadata(&reference).unwrap().len() / 1024;
        std::fs::remove_file(&reference).unwrap();
        let output = dir.join(output_name);
        for limit_kib in [full_kib - 4, full_kib / 2] {
            std::fs::write(&output, b"the user's previous file").unwrap();
            let result = run_within(with_file_size_limit(limit_kib, &convert(&output)), Duration::from_secs(300));
            let what = format!("{output_name} with {limit_kib} of {full_kib} KiB");
            assert!(!result.status.success(), "{what}: convert succeeded on a full disk");
            assert!(!stderr(&result).contains("wrote"), "{what}: {}", stderr(&result));
            assert_eq!(std::fs::read(&output).unwrap(), b"the user's previous file", "{what}: the old file was replaced");
            assert!(leftovers(&dir).is_empty(), "{what}: {:?}", leftovers(&dir));
        }
    }
}

#[test]
fn reading_a_keras_archive_writes_nothing_to_the_temporary_folder() {
    let Some(fixture) = keras_fixture("keras3_happy") else { return };
    let temp = scratch_dir("keras-no-temp");
    let mut command = keras_tch();
    command.arg("inspect").arg(fixture.join("model.keras")).env("TMPDIR", &temp);
    let output = run_within(command, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_dir(&temp).unwrap().count(), 0, "files were written to TMPDIR");
    // Nor does it need one.
    let mut command = keras_tch();
    command.arg("inspect").arg(fixture.join("model.keras")).env("TMPDIR", temp.join("missing"));
    assert!(run_within(command, Duration::from_secs(60)).status.success());
}

/// Start `command`, wait `after`, send `signal`, and return how it ended.
fn interrupted(command: Command, after: Duration, signal: i32) -> Output {
    signalled(command, SignalAt::After(after), signal, false)
}

/// When a signal is sent: after a time, or once a file exists (the first checkpoint: training
/// is under way).
enum SignalAt {
    After(Duration),
    Once(PathBuf),
}

/// As [`interrupted`], the command in a process group of its own; with `whole_group` the signal
/// goes to the group, as a terminal's Ctrl-C does (reaching the command's own children too).
fn signalled(mut command: Command, at: SignalAt, signal: i32, whole_group: bool) -> Output {
    use std::os::unix::process::CommandExt;
    let child = command.process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    match at {
        SignalAt::After(after) => std::thread::sleep(after),
        SignalAt::Once(path) => {
            let started = Instant::now();
            while !path.exists() {
                assert!(started.elapsed() < Duration::from_secs(120), "no {} after two minutes", path.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let target = if whole_group { -(child.id() as i32) } else { child.id() as i32 };
    // SAFETY: sending a signal to our own child process (or its group).
    unsafe { libc::kill(target, signal) };
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "the command took {:?} to stop", started.elapsed());
    output
}

#[test]
fn ctrl_c_or_sigterm_stops_any_command_with_no_partial_output() {
    let dir = scratch_dir("signals");
    // Long enough to still be running when the signal comes: the course ResNet50 on 2,000
    // images takes well over 3 s here.
    let Some((model, x)) = model_and_input("h5_course_resnet50", &dir, 2_000) else { return };
    for (signal, status) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let out = dir.join(format!("y{signal}.npy"));
        let output = interrupted(predict(&model, &x, &out), Duration::from_secs(3), signal);
        assert_eq!(output.status.code(), Some(status), "{}", stderr(&output));
        assert!(!out.exists(), "a partial output was left");
        assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    }
}

/// A long training run on the course's cat/non-cat file, checkpointing under `root`.
fn long_training(train: &Path, root: &Path) -> Command {
    let mut command = keras_tch();
    command
        .args(["train", "--arch", "happy", "--epochs", "500", "--verbose", "0", "--device", "cpu", "--data"])
        .arg(train)
        .arg("--checkpoint-dir")
        .arg(root.join("checkpoints"))
        .arg("--root")
        .arg(root);
    command
}

/// How a signalled training run must end: its status, the checkpoint saved and said.
fn assert_stopped_with_a_checkpoint(output: &Output, status: i32, root: &Path) {
    assert_eq!(output.status.code(), Some(status), "{}", stderr(output));
    assert!(stderr(output).contains("saving a checkpoint"), "{}", stderr(output));
    assert!(root.join("checkpoints/checkpoint.json").exists());
}

#[test]
fn sigterm_during_training_saves_a_checkpoint_like_ctrl_c() {
    let Some(train) = shared_data("train_catvnoncat.h5") else { return };
    let root = scratch_dir("sigterm-train");
    let started = SignalAt::Once(root.join("checkpoints/checkpoint.json"));
    let output = signalled(long_training(&train, &root), started, libc::SIGTERM, false);
    assert_stopped_with_a_checkpoint(&output, 143, &root);
}

/// Ctrl-C at a terminal reaches the whole process group, the course file's reading process too:
/// training still stops at the end of its step with a checkpoint, not with a read error. (The
/// reader ignores SIGINT, so a keystroke that lands during a batch's read — a few ms of each
/// step, rarely hit here — cannot turn the clean stop into an error either.)
#[test]
fn ctrl_c_to_the_group_during_training_on_a_course_file_saves_a_checkpoint() {
    let Some(train) = shared_data("train_catvnoncat.h5") else { return };
    let root = scratch_dir("ctrl-c-group");
    let started = SignalAt::Once(root.join("checkpoints/checkpoint.json"));
    let output = signalled(long_training(&train, &root), started, libc::SIGINT, true);
    assert_stopped_with_a_checkpoint(&output, 130, &root);
}

fn usage_error(args: &[&str]) -> String {
    let output = run_within(
        {
            let mut c = keras_tch();
            c.args(args);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(2), "keras-tch {args:?} should be a usage error: {}", stderr(&output));
    stderr(&output)
}

#[test]
fn flags_that_cannot_mean_anything_are_refused_at_parse_time() {
    for (args, expected) in [
        (&["evaluate", "--model", "m.h5", "--data", "d.h5", "--batch-size", "0"][..], "at least 1"),
        (&["predict", "--model", "m.h5", "--input", "x.npy", "--output", "y.npy", "--batch-size=-3"], "at least 1"),
        (&["train", "--arch", "happy", "--lr", "nan"], "finite number above 0"),
        (&["train", "--arch", "happy", "--lr", "0"], "finite number above 0"),
        (&["train", "--arch", "happy", "--validation-split", "2"], "below 1"),
        (&["train", "--arch", "happy", "--validation-split=-0.1"], "at least 0"),
        (&["train", "--arch", "happy", "--limit", "0"], "at least 1"),
        (&["transfer", "--base", "b.h5", "--data", "d", "--save", "o.h5", "--dropout", "1.5"], "below 1"),
        (&["demo", "--batch-size", "0"], "at least 1"),
    ] {
        let message = usage_error(args);
        assert!(message.contains(expected), "keras-tch {args:?}: {message}");
    }
}

#[test]
fn a_model_whose_output_does_not_fit_the_classes_is_refused() {
    let (Some(fixture), Some(signs)) = (keras_fixture("h5_happy"), shared_data("test_signs.h5")) else { return };
    let root = scratch_dir("output-classes");
    let mut command = keras_tch();
    command
        .args(["train", "--device", "cpu", "--epochs", "1", "--verbose", "0", "--model"])
        .arg(fixture.join("model.h5"))
        .arg("--data")
        .arg(&signs)
        .arg("--root")
        .arg(&root);
    let output = run_within(command, Duration::from_secs(120));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("1 unit(s)") && message.contains("6 classes"), "{message}");
    let mut command = keras_tch();
    command.args(["evaluate", "--device", "cpu", "--model"]).arg(fixture.join("model.h5")).arg("--data").arg(&signs);
    let output = run_within(command, Duration::from_secs(120));
    assert!(!output.status.success() && stderr(&output).contains("6 classes"), "{}", stderr(&output));
}

#[test]
fn an_empty_training_set_is_an_error_not_a_panic() {
    let dir = scratch_dir("empty-train");
    let path = dir.join("empty.h5");
    let file = hdf5::File::create(&path).unwrap();
    file.new_dataset::<u8>().shape([0, 64, 64, 3]).create("train_set_x").unwrap();
    file.new_dataset::<i64>().shape([0]).create("train_set_y").unwrap();
    file.new_dataset::<i64>().shape([2]).create("list_classes").unwrap().write_raw(&[0i64, 1]).unwrap();
    drop(file);
    let mut command = keras_tch();
    command.args(["train", "--arch", "happy", "--device", "cpu", "--limit", "5", "--data"]).arg(&path).arg("--root").arg(&dir);
    let output = run_within(command, Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("holds no training images"), "{}", stderr(&output));
    let empty = dir.join("empty.npy");
    write_npy(&empty, &Tensor::zeros([0, 64, 64, 3], (Kind::Float, Device::Cpu))).unwrap();
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let output = run_within(predict(&fixture.join("model.h5"), &empty, &dir.join("y.npy")), Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("holds no images"), "{}", stderr(&output));
}

#[test]
fn a_checkpoint_record_cannot_reach_outside_its_folder_or_lie_about_its_history() {
    let Some(train) = shared_data("train_catvnoncat.h5") else { return };
    let root = scratch_dir("checkpoint-escape");
    let checkpoints = root.join("checkpoints");
    let train_command = |epochs: &str| {
        let mut command = keras_tch();
        command
            .args(["train", "--arch", "happy", "--verbose", "0", "--device", "cpu", "--resume", "--epochs", epochs, "--data"])
            .arg(&train)
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .arg("--root")
            .arg(&root);
        command
    };
    let first = run_within(train_command("1"), Duration::from_secs(300));
    assert!(first.status.success(), "{}", stderr(&first));
    let state = checkpoints.join("checkpoint.json");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    // A file outside the folder, which a resumed run must neither load nor delete.
    let victim = root.join("victim.safetensors");
    std::fs::copy(checkpoints.join(record["weights"].as_str().unwrap()), &victim).unwrap();
    for (field, value, expected) in [
        ("weights", serde_json::json!("../victim.safetensors"), "not a checkpoint-*.safetensors file of this folder"),
        ("weights", serde_json::json!(victim.to_str().unwrap()), "not a checkpoint-*.safetensors file of this folder"),
        ("epoch", serde_json::json!(0), "for 0 completed epoch(s)"),
    ] {
        let mut edited = record.clone();
        edited[field] = value;
        std::fs::write(&state, edited.to_string()).unwrap();
        let output = run_within(train_command("3"), Duration::from_secs(300));
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
        assert!(victim.exists(), "the file outside the checkpoint folder was deleted");
    }
}

#[test]
fn a_file_declaring_a_huge_dataset_is_an_error_not_an_abort() {
    let dir = scratch_dir("inspect-huge");
    let path = dir.join("huge.h5");
    {
        let file = hdf5::File::create(&path).unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> = vec!["dense".parse().unwrap()];
        file.new_attr::<hdf5::types::VarLenUnicode>().shape([1]).create("layer_names").unwrap().write_raw(&names).unwrap();
        let group = file.create_group("dense").unwrap();
        let weights: Vec<hdf5::types::VarLenUnicode> = vec!["dense/kernel:0".parse().unwrap()];
        group.new_attr::<hdf5::types::VarLenUnicode>().shape([1]).create("weight_names").unwrap().write_raw(&weights).unwrap();
        group.new_dataset::<f32>().shape([100_000, 107_500]).create("dense/kernel:0").unwrap();
    } // every handle closed: HDF5 locks files it has open
    let mut command = keras_tch();
    command.arg("inspect").arg(&path);
    let output = run_within(command, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("truncated or corrupt"), "{}", stderr(&output));
}

/// An output suffix `convert` does not write is refused before anything is written, and the
/// message lists every format it does write (it once left out `.keras`).
#[test]
fn convert_to_an_unknown_format_lists_every_format_it_writes() {
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let output = scratch_dir("convert-unknown").join("model.onnx");
    let mut convert = keras_tch();
    convert.args(["convert", "--model"]).arg(fixture.join("model.h5")).arg(&output);
    let result = run_within(convert, Duration::from_secs(120));
    assert!(!result.status.success());
    let message = stderr(&result);
    for format in [".h5", ".weights.h5", ".keras", ".safetensors"] {
        assert!(message.contains(format), "{format} missing from: {message}");
    }
    assert!(!output.exists());
}
