//! `load_model` and `load_weights` for every Keras file keras-tch reads, told apart by content:
//! Keras 2 / tf.keras full-model HDF5, weights-only HDF5 (Keras 1, 2 and 3 layouts), Keras 3
//! `.keras` archives, and keras-tch's safetensors checkpoints.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tch::Device;

use super::input::check_input;
use super::limits;
use super::load_weights::{apply_weights, LoadOptions, LoadReport};
use super::model_config::model_from_config;
use super::optimizer_weights::{optimizer_state_from_h5, optimizer_state_from_keras3};
use super::safetensors::read_safetensors_weights;
use super::saved_weights::{
    has_model_config, read_h5_model, read_h5_weights, read_h5_weights_shared, read_keras3_optimizer, FileLayout, H5Source,
    ListedOptimizerState, SavedLayer, SavedWeight, SavedWeights,
};
use crate::error::Error;
use crate::graph::optimizer_state::{OptimizerState, SavedOptimizerState};
use crate::graph::Model;
use crate::layers::init::InitialWeights;

/// What a file is, from its first bytes (and, for HDF5, its attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Hdf5,
    KerasArchive,
    Safetensors,
}

pub fn detect(path: &Path) -> Result<FileKind> {
    let mut head = [0u8; 8];
    check_input(path, "the model file")?;
    let read =
        std::fs::File::open(path).and_then(|f| f.take(8).read(&mut head)).with_context(|| format!("cannot read {}", path.display()))?;
    if read == 0 {
        bail!("{} is empty (0 bytes)", path.display());
    }
    if head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return Ok(FileKind::Hdf5);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok(FileKind::KerasArchive);
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        return Ok(FileKind::Safetensors);
    }
    Err(crate::Error::UnknownFileFormat { path: path.to_path_buf(), first_bytes: head[..read].to_vec() }.into())
}

/// Whether `path` describes its own architecture (a full-model `.h5` with `model_config`, or a
/// `.keras` archive), so `load_model` can open it; weights-only files need a built model.
pub fn describes_architecture(path: &Path) -> Result<bool> {
    Ok(match detect(path)? {
        FileKind::Hdf5 => has_model_config(path)?,
        FileKind::KerasArchive => true,
        FileKind::Safetensors => false,
    })
}

/// Keras's `load_model`: rebuild the graph from the file's config, load its weights, and keep
/// its training configuration (so `evaluate` works as after Keras's `load_model`).
pub fn load_model(path: &Path, device: Device) -> Result<Model> {
    match detect(path)? {
        FileKind::Hdf5 => {
            let Some(stored) = read_h5_model(path)? else {
                return Err(Error::WeightsOnly { path: path.into(), kind: "Keras save_weights HDF5" }.into());
            };
            let config = parse_json(&stored.model_config, path, "model_config")?;
            let training = stored.training_config.map(|text| parse_json(&text, path, "training_config")).transpose()?;
            let mut model = model_from_config(&config, InitialWeights::ToBeLoaded, device)
                .with_context(|| format!("rebuilding the model of {}", path.display()))?;
            apply_weights(&mut model, &stored.weights?, &LoadOptions::default())?;
            model.training_config = training;
            model.optimizer_state = saved_state(stored.optimizer_weights, &model, optimizer_state_from_h5);
            Ok(model)
        }
        FileKind::KerasArchive => {
            let mut archive = KerasArchive::open(path)?;
            let config = parse_json(&archive.text("config.json")?, path, "config.json")?;
            let mut model = model_from_config(&config, InitialWeights::ToBeLoaded, device)
                .with_context(|| format!("rebuilding the model of {}", path.display()))?;
            let source = archive.weights_source()?;
            // The optimizer's variables too (or why they could not be listed), for `train`.
            let optimizer = read_keras3_optimizer(Arc::clone(&source));
            apply_weights(&mut model, &read_h5_weights_shared(source)?, &LoadOptions::default())?;
            // An uncompiled model's `compile_config` is null, or `{}` in recent Keras 3.
            model.training_config = config.get("compile_config").filter(|c| c.as_object().is_some_and(|map| !map.is_empty())).cloned();
            model.optimizer_state = saved_state(optimizer, &model, optimizer_state_from_keras3);
            Ok(model)
        }
        FileKind::Safetensors => Err(Error::WeightsOnly { path: path.into(), kind: "safetensors checkpoint" }.into()),
    }
}

/// Keras's `load_weights` from any supported file onto a built model.
pub fn load_weights(model: &mut Model, path: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let saved = read_weights(path)?;
    apply_weights(model, &saved, options)
}

/// The weights of any supported file, without touching a model.
pub fn read_weights(path: &Path) -> Result<SavedWeights> {
    match detect(path)? {
        FileKind::Hdf5 => read_h5_weights(path),
        FileKind::KerasArchive => read_h5_weights_shared(KerasArchive::open(path)?.weights_source()?),
        FileKind::Safetensors => read_safetensors_weights(path),
    }
}

fn parse_json(text: &str, path: &Path, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{}: {what} is not valid JSON", path.display()))
}

/// A Keras 3 `.keras` zip: `config.json`, `model.weights.h5`, `metadata.json`. Members are
/// inflated in memory, each capped (see [`limits`]) both by what its header declares and while
/// it inflates, so a zip bomb is refused instead of filling memory or a disk.
struct KerasArchive {
    path: std::path::PathBuf,
    zip: zip::ZipArchive<std::fs::File>,
}

impl KerasArchive {
    fn open(path: &Path) -> Result<Self> {
        check_input(path, "the model file")?;
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut zip = zip::ZipArchive::new(file).with_context(|| format!("{} is not a readable zip archive", path.display()))?;
        for index in 0..zip.len() {
            let entry = zip.by_index(index)?;
            if entry.enclosed_name().is_none() {
                bail!("{}: archive entry '{}' escapes the archive (absolute path or '..'); refusing it", path.display(), entry.name());
            }
        }
        Ok(Self { path: path.into(), zip })
    }

    fn bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let archive = self.path.display().to_string();
        let entry = self.zip.by_name(name).with_context(|| format!("{archive} has no '{name}' (not a Keras 3 .keras archive?)"))?;
        let (declared, compressed) = (entry.size(), entry.compressed_size());
        let cap =
            compressed.saturating_mul(limits::MAX_INFLATION_RATIO).clamp(limits::MIN_INFLATION_ALLOWANCE, limits::MAX_PARAMETER_BYTES);
        if declared > cap {
            bail!(
                "{archive}: '{name}' declares {declared} bytes inflated from {compressed} compressed; refusing more than {cap} \
                 (a zip bomb, or a model beyond keras-tch's limits)"
            );
        }
        // Reserve only what is cheap: the header's size is a claim until the data backs it.
        let mut bytes = Vec::with_capacity(declared.min(limits::MIN_INFLATION_ALLOWANCE) as usize);
        // One byte more than declared, to notice an entry that inflates past its header.
        entry.take(declared + 1).read_to_end(&mut bytes).with_context(|| format!("{archive}: reading '{name}'"))?;
        if bytes.len() as u64 != declared {
            bail!("{archive}: '{name}' inflates to {} bytes but its header declares {declared}; the archive is corrupt", bytes.len());
        }
        Ok(bytes)
    }

    fn text(&mut self, name: &str) -> Result<String> {
        String::from_utf8(self.bytes(name)?).with_context(|| format!("{}: '{name}' is not UTF-8", self.path.display()))
    }

    /// `model.weights.h5`, opened in memory (no temporary file).
    fn weights_source(&mut self) -> Result<Arc<H5Source>> {
        let bytes = self.bytes("model.weights.h5")?;
        Ok(Arc::new(H5Source::memory(self.path.join("model.weights.h5"), bytes)?))
    }
}

/// What the file says of its optimizer's state, read by `read` (one dialect's layout).
fn saved_state(
    listed: Result<ListedOptimizerState>,
    model: &Model,
    read: fn(i64, &SavedWeights, &Model) -> Result<OptimizerState>,
) -> SavedOptimizerState {
    match listed.and_then(|listed| listed.map(|(iterations, saved)| read(iterations, &saved, model)).transpose()) {
        Ok(None) => SavedOptimizerState::Absent,
        Ok(Some(state)) => SavedOptimizerState::Restorable(state),
        Err(why) => SavedOptimizerState::Unusable(format!("{why:#}")),
    }
}

/// Build `SavedWeights` from (layer, weight) -> Keras-layout tensors (safetensors, conversions).
pub fn saved_from_pairs(path: &Path, entries: Vec<(String, String, tch::Tensor)>) -> SavedWeights {
    let mut layers: Vec<SavedLayer> = Vec::new();
    for (layer, weight, value) in entries {
        let dataset = format!("{layer}/{weight}");
        let saved = SavedWeight::loaded(weight, dataset, value);
        match layers.iter_mut().find(|l| l.name == layer) {
            Some(existing) => existing.weights.push(saved),
            None => layers.push(SavedLayer { name: layer, weights: vec![saved], keras3_group: None }),
        }
    }
    SavedWeights { path: path.into(), layout: FileLayout::WeightsOnly, keras_version: None, layers, source: None }
}
