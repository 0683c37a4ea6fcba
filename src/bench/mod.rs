//! The benchmark workloads (`keras-tch bench`): each runs after a warm-up, several times, and
//! reports its median; each also runs in its own process (see `cli::bench`), so its peak
//! resident memory is its own.

pub mod flops;
pub mod folder_epoch;
pub mod machine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::data::loader::Loading;
use crate::graph::Model;
use crate::io::{load_weights, save_weights_h5, LoadOptions};
use crate::layers::autocast::{autocast, Precision};
use crate::models::applications::{resnet50, Config, Naming, Pooling};
use crate::models::{course, happy};
use crate::train::compile::CompileConfig;
use crate::train::fit::{fit, train_step, FitOptions};
use crate::train::losses::CrossEntropyStyle;
use crate::train::optimizer::{Optimizer, OptimizerConfig};
use flops::{forward_flops, training_flops};

/// The workloads, by the name `--only` takes and the JSON key prefix they report under.
pub const WORKLOADS: [&str; 7] =
    ["course-train-step", "course-predict", "imagenet-predict", "happy-epoch", "load-h5", "classify", "folder-epoch"];

/// The workloads that only run models forward, as `predict` and `classify` do: their processes
/// set up memory as those commands do (`runtime::back_large_buffers_with_huge_pages`).
pub const INFERENCE_WORKLOADS: [&str; 3] = ["course-predict", "imagenet-predict", "classify"];

/// What every workload runs with.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub device: Device,
    pub precision: Precision,
    /// Timed repetitions (after warm-up); the median is reported.
    pub repeats: usize,
    /// `folder-epoch`'s photos (default: a small generated folder).
    pub folder: Option<PathBuf>,
    /// How `folder-epoch` reads its photos.
    pub loading: Loading,
}

/// Median of `samples` (sorted copy).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `repeats` timings of `run` after `warmup` untimed calls.
pub fn timings(warmup: usize, repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        run()?;
    }
    (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            run()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect()
}

/// This process's peak resident memory so far (VmHWM), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    proc_self_mb("status", "VmHWM:")
}

/// This process's memory in transparent huge pages now (AnonHugePages), in MB: how much of it
/// `runtime::back_large_buffers_with_huge_pages` got.
pub fn huge_pages_mb() -> Option<f64> {
    proc_self_mb("smaps_rollup", "AnonHugePages:")
}

/// A `field:  N kB` line of one of this process's /proc files, in MB.
fn proc_self_mb(file: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/self/{file}")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Run one workload here and report its numbers as JSON (keys as `keras-tch bench --json`).
/// In bf16 every key gets a `_bf16` suffix, so fp32 and bf16 reports merge side by side.
pub fn run_workload(name: &str, settings: &BenchSettings, scratch: &Path) -> Result<Value> {
    let (device, precision, repeats) = (settings.device, settings.precision, settings.repeats);
    let mut report = match name {
        "course-train-step" => course_train_step(device, precision, repeats)?,
        "course-predict" => course_predict(device, precision, repeats)?,
        "imagenet-predict" => imagenet_predict(device, precision, repeats)?,
        "happy-epoch" => happy_epoch(device, precision, repeats)?,
        "load-h5" => load_h5(device, repeats, scratch)?,
        "classify" => classify_end_to_end(precision, repeats, scratch)?,
        "folder-epoch" => folder_epoch::folder_epoch(settings, scratch)?,
        other => bail!("unknown workload '{other}' (one of {})", WORKLOADS.join(", ")),
    };
    let key = name.replace('-', "_");
    report[format!("{key}_peak_rss_mb")] = json!(peak_rss_mb());
    report[format!("{key}_huge_pages_mb")] = json!(huge_pages_mb());
    if precision == Precision::Bf16 {
        let fields = report.as_object().context("a JSON object")?.clone();
        report = fields.into_iter().map(|(key, value)| (format!("{key}_bf16"), value)).collect();
    }
    Ok(report)
}

fn random_images(n: i64, size: i64, device: Device) -> Tensor {
    Tensor::rand([n, size, size, 3], (Kind::Float, device))
}

fn one_hot(n: i64, classes: i64, device: Device) -> Tensor {
    Tensor::randint(classes, [n], (Kind::Int64, device)).one_hot(classes).to_kind(Kind::Float)
}

fn course_train_step(device: Device, precision: Precision, repeats: usize) -> Result<Value> {
    let model = course::resnet50([64, 64, 3], 6, None, device)?;
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras)?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let (x, y) = (random_images(32, 64, device), one_hot(32, 6, device));
    let samples = timings(2, repeats, || autocast(precision, || train_step(&model, &compile, &mut optimizer, &x, &y, None)).map(|_| ()))?;
    let s = median(&samples);
    Ok(json!({ "course_train_step_b32_s": s, "course_train_step_gflops": training_flops(&model) * 32.0 / s / 1e9 }))
}

fn course_predict(device: Device, precision: Precision, repeats: usize) -> Result<Value> {
    let model = course::resnet50([64, 64, 3], 6, None, device)?;
    let model = model.for_inference(precision);
    let x = random_images(32, 64, device);
    let s = median(&timings(2, repeats, || model.predict(&x).map(|_| ()))?);
    Ok(json!({ "course_predict_b32_s": s, "course_predict_gflops": forward_flops(model.model()) * 32.0 / s / 1e9 }))
}

fn imagenet_model(device: Device) -> Result<Model> {
    let config = Config { naming: Naming::Keras, include_top: true, pooling: Pooling::None, classes: 1000, input_shape: [224, 224, 3] };
    resnet50(&config, device)
}

fn imagenet_predict(device: Device, precision: Precision, repeats: usize) -> Result<Value> {
    let unprepared = imagenet_model(device)?;
    let model = unprepared.for_inference(precision);
    let mut report = json!({});
    for batch in [1i64, 8] {
        let x = random_images(batch, 224, device);
        // Two warm-up calls, as for the course: the second plans Winograd's algorithm.
        let s = median(&timings(2, repeats, || model.predict(&x).map(|_| ()))?);
        report[format!("imagenet_predict_b{batch}_img_per_s")] = json!(batch as f64 / s);
        report[format!("imagenet_predict_b{batch}_gflops")] = json!(forward_flops(&unprepared) * batch as f64 / s / 1e9);
    }
    Ok(report)
}

fn happy_epoch(device: Device, precision: Precision, repeats: usize) -> Result<Value> {
    let mut model = happy::happy_model([64, 64, 3], device)?;
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras)?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let x = random_images(600, 64, device);
    let y = Tensor::randint(2, [600, 1], (Kind::Float, device));
    let options = FitOptions { epochs: 1, batch_size: 16, verbose: 0, precision, ..Default::default() };
    let never = std::sync::atomic::AtomicBool::new(false);
    let s = median(&timings(1, repeats, || fit(&mut model, &compile, &mut optimizer, &x, &y, None, &options, &never).map(|_| ()))?);
    Ok(json!({ "happy_epoch_600_b16_s": s }))
}

/// A Keras-layout ImageNet ResNet50 weights file (about 100 MB), written once per scratch folder.
fn imagenet_weights_file(device: Device, scratch: &Path) -> Result<std::path::PathBuf> {
    let path = scratch.join("resnet50_imagenet_layout.h5");
    if !path.exists() {
        save_weights_h5(&imagenet_model(device)?, &path)?;
    }
    Ok(path)
}

fn load_h5(device: Device, repeats: usize, scratch: &Path) -> Result<Value> {
    let path = imagenet_weights_file(device, scratch)?;
    let mut model = imagenet_model(device)?;
    let bytes = std::fs::metadata(&path)?.len();
    let s = median(&timings(1, repeats, || load_weights(&mut model, &path, &LoadOptions::default()).map(|_| ()))?);
    Ok(json!({ "load_h5_s": s, "load_h5_mb": bytes as f64 / 1e6 }))
}

/// `keras-tch classify` of one photo, from process start to the printed line.
fn classify_end_to_end(precision: Precision, repeats: usize, scratch: &Path) -> Result<Value> {
    let weights = imagenet_weights_file(Device::Cpu, scratch)?;
    let photo = scratch.join("photo.png");
    if !photo.exists() {
        let pixels: Vec<u8> = (0..300 * 400 * 3).map(|i| (i * 7 % 251) as u8).collect();
        image::RgbImage::from_raw(400, 300, pixels).context("photo buffer")?.save(&photo)?;
    }
    let exe = std::env::current_exe()?;
    let s = median(&timings(1, repeats, || {
        let output = Command::new(&exe)
            .args(["classify", "--device", "cpu", "--precision", precision.name(), "--weights"])
            .arg(&weights)
            .arg(&photo)
            .output()?;
        if !output.status.success() || !String::from_utf8_lossy(&output.stdout).starts_with("Predicted: [") {
            bail!("classify failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    })?);
    Ok(json!({ "classify_one_image_s": s }))
}
