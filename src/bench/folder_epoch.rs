//! The `folder-epoch` workload: one epoch of the course ResNet50 (64×64) over a folder of JPEG
//! photos read from disk, reporting the input pipeline's images/s alone, training's images/s
//! with the pipeline feeding it, and (as every workload) peak memory — so a starving pipeline
//! shows as a number. Without `--folder` it writes a small folder of photo-sized JPEGs first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::BenchSettings;
use crate::data::dataset::LabelMode;
use crate::data::folders::folder_datasets;
use crate::imaging::{ImageReading, Interpolation, PreprocessMode};
use crate::io::atomic::write_bytes_atomically;
use crate::models::course;
use crate::rng::SplitMix64;
use crate::train::compile::CompileConfig;
use crate::train::fit::{fit_dataset, FitOptions};
use crate::train::losses::CrossEntropyStyle;
use crate::train::optimizer::{Optimizer, OptimizerConfig};

const GENERATED_PHOTOS: usize = 320;
const GENERATED_CLASSES: usize = 4;
const BATCH: usize = 32;

pub fn folder_epoch(settings: &BenchSettings, scratch: &Path) -> Result<Value> {
    let folder = match &settings.folder {
        Some(folder) => folder.clone(),
        None => generated_folder(scratch)?,
    };
    let reading = ImageReading::new((64, 64), Interpolation::Nearest);
    let (train, _) = folder_datasets(&folder, 0.0, 0, reading)?;
    let train = train.with_preprocessing(PreprocessMode::Scale255).with_label_mode(LabelMode::Categorical);
    let images = train.len() as f64;

    let start = Instant::now();
    for batch in train.batches(None, BATCH, 0, &settings.loading) {
        let _ = batch?;
    }
    let pipeline = images / start.elapsed().as_secs_f64();

    let mut model = course::resnet50([64, 64, 3], train.classes().len() as i64, None, settings.device)?;
    let compile = CompileConfig::for_model(&model, None, CrossEntropyStyle::TfKeras)?;
    let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
    let options =
        FitOptions { batch_size: BATCH as i64, verbose: 0, precision: settings.precision, loading: settings.loading, ..Default::default() };
    let start = Instant::now();
    fit_dataset(&mut model, &compile, &mut optimizer, &train, None, &options, &std::sync::atomic::AtomicBool::new(false))?;
    let training = images / start.elapsed().as_secs_f64();
    Ok(json!({
        "folder_epoch_images": train.len(),
        "folder_epoch_pipeline_img_per_s": pipeline,
        "folder_epoch_train_img_per_s": training,
        "folder_epoch_workers": settings.loading.workers,
        "folder_epoch_prefetch": settings.loading.prefetch,
    }))
}

/// GENERATED_PHOTOS JPEGs of 300-500 px a side in GENERATED_CLASSES class folders (smooth
/// colour ramps plus noise, quality 90: about the size of web photos), written once per scratch folder.
fn generated_folder(scratch: &Path) -> Result<PathBuf> {
    let root = scratch.join("photos");
    let mut rng = SplitMix64::new(0);
    for i in 0..GENERATED_PHOTOS {
        let path = root.join(format!("class_{}", i % GENERATED_CLASSES)).join(format!("photo_{i:04}.jpg"));
        if path.exists() {
            continue;
        }
        let (width, height) = (rng.uniform(300.0, 501.0) as u32, rng.uniform(300.0, 501.0) as u32);
        let tint = [rng.uniform(0.0, 255.0), rng.uniform(0.0, 255.0), rng.uniform(0.0, 255.0)];
        let mut pixels = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                let ramp = (x + y) as f64 / (width + height) as f64;
                for t in tint {
                    pixels.push((t * 0.6 + ramp * 100.0 + rng.uniform(-12.0, 12.0)).clamp(0.0, 255.0) as u8);
                }
            }
        }
        let image = image::RgbImage::from_raw(width, height, pixels).context("photo buffer")?;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&image)?;
        std::fs::create_dir_all(path.parent().expect("a class folder"))?;
        write_bytes_atomically(&path, &jpeg)?;
    }
    Ok(root)
}
