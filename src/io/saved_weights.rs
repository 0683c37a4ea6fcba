//! Reading the weights stored in a Keras HDF5 file, in every layout Keras has written:
//!
//! - tf.keras / Keras 2 full model (`model.save(..h5)`): group `model_weights`, attribute
//!   `layer_names`, each layer group with `weight_names` naming its datasets (`conv1/kernel:0`);
//! - weights-only (`save_weights`, the ImageNet checkpoints): the same at the file's root;
//! - Keras 1 (the original ImageNet ResNet50 release): the same at the root without
//!   `keras_version`, datasets named `conv1_W:0`, `bn_conv1_running_std:0` (which holds the
//!   moving *variance*);
//! - Keras 3 `.weights.h5`: `layers/<name>/vars/<i>` (see [`read_keras3_weights`]).
//!
//! Datasets are always opened by the names in `weight_names`, never by a path we build
//! (TF1-era files say `fc6/fc6_1/kernel:0`; Keras 3 drops `:0`); a long `layer_names` may be
//! split into `layer_names0`, `layer_names1`, … (Keras's `save_attributes_to_hdf5_group`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hdf5::{Dataset, Group, Location};
use tch::Tensor;

use super::global_heap;
use super::hdf5_text::read_string_list;
use super::input::check_input;
use super::limits;

/// Which Keras wrote the weights, as far as the layout tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Keras 2 / tf.keras `model.save` (has `model_config`).
    FullModel,
    /// Keras 2 / tf.keras `save_weights` (the ImageNet checkpoints of keras-applications).
    WeightsOnly,
    /// Keras 1 weights (`conv1_W:0`, `_running_std`), e.g. the original ImageNet ResNet50 file.
    Keras1,
    /// Keras 3 `.weights.h5` (`layers/…/vars/i`).
    Keras3,
}

/// One stored weight under its Keras short name (`kernel`, `bias`, `gamma`, `beta`,
/// `moving_mean`, `moving_variance`), in Keras's layout. Its shape is known without reading it;
/// its values are read (as float32) only when a load has checked that shape.
pub struct SavedWeight {
    pub name: String,
    /// Where it is in the file (for messages).
    pub dataset: String,
    pub shape: Vec<i64>,
    pub value: WeightValue,
}

/// A weight's values: already in memory (safetensors, conversions) or still in an HDF5 file.
pub enum WeightValue {
    Loaded(Tensor),
    Hdf5 { dataset: Dataset, file: String, layer: String },
}

impl SavedWeight {
    /// A weight whose values are already in memory.
    pub fn loaded(name: String, dataset: String, value: Tensor) -> Self {
        Self { name, dataset, shape: value.size(), value: WeightValue::Loaded(value) }
    }

    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }

    /// The values as float32 (float16, bfloat16 and float64 are converted, as Keras does).
    pub fn read(&self) -> Result<Tensor> {
        match &self.value {
            WeightValue::Loaded(tensor) => Ok(tensor.to_kind(tch::Kind::Float)),
            WeightValue::Hdf5 { dataset, file, layer } => {
                let values = read_as_f32(dataset)
                    .with_context(|| format!("{file}: reading weight '{}' of layer '{layer}'", self.dataset))?;
                Ok(Tensor::from_slice(&values).reshape(&self.shape))
            }
        }
    }
}

pub struct SavedLayer {
    pub name: String,
    pub weights: Vec<SavedWeight>,
    /// Keras 3 `.weights.h5` only: the group the layer is stored under (`conv2d_1`), named after
    /// the layer's class and position rather than the layer.
    pub keras3_group: Option<String>,
}

/// Every layer of a file (weightless ones included, as the file lists them).
pub struct SavedWeights {
    pub path: PathBuf,
    pub layout: Layout,
    pub keras_version: Option<String>,
    pub layers: Vec<SavedLayer>,
}

impl SavedWeights {
    pub fn layer(&self, name: &str) -> Option<&SavedLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Layers that carry weights.
    pub fn weighted_layers(&self) -> impl Iterator<Item = &SavedLayer> {
        self.layers.iter().filter(|l| !l.weights.is_empty())
    }
}

/// Open `path` as HDF5 (after checking it is a regular, non-empty file), with an error that
/// says what the file is not.
pub fn open_h5(path: &Path) -> Result<hdf5::File> {
    Ok(open_h5_sized(path)?.0)
}

/// [`open_h5`], with the file's size as checked (what its declared dataset sizes are held to).
pub fn open_h5_sized(path: &Path) -> Result<(hdf5::File, u64)> {
    let meta = check_input(path, "the HDF5 file")?;
    if meta.len() == 0 {
        bail!("{} is empty (0 bytes), not a Keras HDF5 file", path.display());
    }
    global_heap::check_file(path, meta.len())?;
    let file = hdf5::File::open(path).map_err(|e| {
        anyhow::anyhow!("{} is not a readable HDF5 file (truncated or another format?): {e}", path.display())
    })?;
    Ok((file, meta.len()))
}

/// Read the weights of any Keras HDF5 layout.
pub fn read_h5_weights(path: &Path) -> Result<SavedWeights> {
    let (file, size) = open_h5_sized(path)?;
    read_h5_weights_from(&file, path, size)
}

/// Read the weights of an open Keras HDF5 file of `file_size` bytes (`path` names it in
/// messages; for a `.keras` archive, the member inside it).
pub fn read_h5_weights_from(file: &hdf5::File, path: &Path, file_size: u64) -> Result<SavedWeights> {
    let source = Source { path, file_size };
    let keras_version = string_attr(file, "keras_version");
    if file.attr("model_config").is_ok() {
        let group = file
            .group("model_weights")
            .with_context(|| format!("{} has a model_config but no model_weights group", path.display()))?;
        let layers = read_layer_groups(&source, &group)?;
        return Ok(SavedWeights { path: path.into(), layout: Layout::FullModel, keras_version, layers });
    }
    if has_layer_names(file) {
        let layers = read_layer_groups(&source, file)?;
        let keras1 = keras_version.as_deref().is_none_or(|v| v.starts_with('1'))
            && layers.iter().flat_map(|l| &l.weights).any(|w| w.dataset.contains("_W:") || w.dataset.ends_with("_W"));
        let layout = if keras1 { Layout::Keras1 } else { Layout::WeightsOnly };
        let layers = if keras1 { layers.into_iter().map(rename_keras1_weights).collect::<Result<_>>()? } else { layers };
        return Ok(SavedWeights { path: path.into(), layout, keras_version, layers });
    }
    if file.group("layers").is_ok() {
        return read_keras3_weights(&source, file);
    }
    bail!(
        "{} is HDF5 but not a Keras file: it has neither model_config/model_weights, a root layer_names \
         (save_weights), nor a Keras 3 'layers' group",
        path.display()
    )
}

/// The file being read, for messages and for judging declared sizes.
struct Source<'a> {
    path: &'a Path,
    file_size: u64,
}

fn has_layer_names(location: &Location) -> bool {
    location.attr("layer_names").is_ok() || location.attr("layer_names0").is_ok()
}

/// A string attribute, if present and readable.
pub fn string_attr(location: &Location, name: &str) -> Option<String> {
    let attr = location.attr(name).ok()?;
    read_string_list(&attr).ok()?.into_iter().next()
}

/// `name` or its chunks `name0`, `name1`, … (Keras splits attributes over 64 KB).
fn read_chunked_list(location: &Location, name: &str) -> Result<Vec<String>> {
    if let Ok(attr) = location.attr(name) {
        return read_string_list(&attr);
    }
    let mut all = Vec::new();
    for index in 0.. {
        match location.attr(&format!("{name}{index}")) {
            Ok(attr) => all.extend(read_string_list(&attr)?),
            Err(_) if index > 0 => break,
            Err(_) => bail!("attribute '{name}' is missing"),
        }
    }
    Ok(all)
}

fn read_layer_groups(source: &Source, root: &Group) -> Result<Vec<SavedLayer>> {
    let path = source.path;
    let where_ = || format!("{} ({})", path.display(), if root.name() == "/" { "root".into() } else { root.name() });
    let names = read_chunked_list(root, "layer_names").with_context(|| format!("reading layer_names of {}", where_()))?;
    let mut seen = std::collections::HashSet::new();
    if let Some(duplicate) = names.iter().find(|name| !seen.insert(name.as_str())) {
        bail!("{}: layer_names lists '{duplicate}' more than once; the file is inconsistent", where_());
    }
    names
        .into_iter()
        .map(|layer| {
            let group = root
                .group(&layer)
                .with_context(|| format!("{}: layer_names lists '{layer}' but there is no such group", where_()))?;
            let weight_names = read_chunked_list(&group, "weight_names")
                .with_context(|| format!("{}: reading weight_names of layer '{layer}'", path.display()))?;
            let weights = weight_names
                .into_iter()
                .map(|full| {
                    let dataset = group.dataset(&full).with_context(|| {
                        format!("{}: layer '{layer}' lists weight '{full}' but the file has no such dataset", path.display())
                    })?;
                    float_weight(source, &layer, &full, format!("{}/{full}", group.name()), dataset)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(SavedLayer { name: layer, weights, keras3_group: None })
        })
        .collect()
}

/// `conv1/kernel:0` → `kernel`; `fc6/fc6_1/kernel:0` → `kernel`; Keras 3's `kernel` → `kernel`.
pub fn short_weight_name(full: &str) -> String {
    let last = full.rsplit('/').next().unwrap_or(full);
    last.split(':').next().unwrap_or(last).to_string()
}

/// Keras 1 names weights `{layer}_W`, `{layer}_b`, `{layer}_running_std`, …; map them to
/// today's names (`running_std` stored the moving variance despite its name).
fn rename_keras1_weights(mut layer: SavedLayer) -> Result<SavedLayer> {
    for weight in &mut layer.weights {
        let suffix = weight.name.strip_prefix(&format!("{}_", layer.name)).unwrap_or(&weight.name);
        weight.name = match suffix {
            "W" => "kernel",
            "b" => "bias",
            "gamma" => "gamma",
            "beta" => "beta",
            "running_mean" => "moving_mean",
            "running_std" => "moving_variance",
            other => bail!("Keras 1 weight '{}' of layer '{}' ({other}) is not one keras-tch knows", weight.dataset, layer.name),
        }
        .to_string();
    }
    Ok(layer)
}

/// A float dataset as a [`SavedWeight`] (not read yet), after checking its element type and
/// that its declared size is one the file can hold; errors name the file, layer, dataset,
/// element type and shape.
/// `listed` is the weight as the layer lists it (`conv1/kernel:0`; Keras 3: its index).
fn float_weight(source: &Source, layer: &str, listed: &str, path_in_file: String, dataset: Dataset) -> Result<SavedWeight> {
    let file = source.path.display().to_string();
    let element = describe_element_type(&dataset)
        .with_context(|| format!("{file}: weight '{listed}' of layer '{layer}': unreadable element type"))?;
    let ElementType::Float(element_bytes) = element else {
        bail!("{file}: weight '{listed}' of layer '{layer}' has element type {element}, expected floats");
    };
    let dims = dataset.shape();
    let shape: Vec<i64> = dims.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect();
    limits::check_declared_size(&dims, element_bytes, !dataset.filters().is_empty(), source.file_size)
        .map_err(|why| anyhow::anyhow!("{file}: weight '{listed}' of layer '{layer}' ({element}): {why}"))?;
    Ok(SavedWeight { name: short_weight_name(listed), dataset: path_in_file, shape, value: WeightValue::Hdf5 { dataset, file, layer: layer.to_string() } })
}

/// What a dataset's elements are, from the HDF5 type itself (not every float type has a Rust
/// twin: float16 and bfloat16 are read through HDF5's own conversion).
enum ElementType {
    Float(usize),
    Other(String),
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ElementType::Float(bytes) => write!(f, "float{}", bytes * 8),
            ElementType::Other(what) => f.write_str(what),
        }
    }
}

fn describe_element_type(dataset: &Dataset) -> Result<ElementType> {
    let dtype = dataset.dtype()?;
    // SAFETY: `dtype.id()` is a live datatype handle for the duration of the call.
    let class = hdf5::sync::sync(|| unsafe { hdf5_sys::h5t::H5Tget_class(dtype.id()) });
    Ok(match class {
        hdf5_sys::h5t::H5T_class_t::H5T_FLOAT => ElementType::Float(dtype.size()),
        _ => ElementType::Other(match dtype.to_descriptor() {
            Ok(descriptor) => descriptor.to_string(),
            Err(_) => format!("{class:?} of {} bytes", dtype.size()),
        }),
    })
}

/// Read any float dataset as float32, letting HDF5 convert (float16, bfloat16, float64, …).
fn read_as_f32(dataset: &Dataset) -> Result<Vec<f32>> {
    let count = dataset.size();
    let mut values = vec![0f32; count];
    // SAFETY: `values` holds exactly as many float32 as the dataset has elements, and HDF5
    // writes the whole selection (H5S_ALL) converted to native float into it.
    let status = hdf5::sync::sync(|| unsafe {
        hdf5_sys::h5d::H5Dread(
            dataset.id(),
            *hdf5_sys::h5t::H5T_NATIVE_FLOAT,
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5s::H5S_ALL,
            hdf5_sys::h5p::H5P_DEFAULT,
            values.as_mut_ptr().cast(),
        )
    });
    if status < 0 {
        bail!("HDF5 could not read or convert the values to float32");
    }
    Ok(values)
}

/// Keras 3 `.weights.h5`: `layers/<group>/vars/<i>`, where the group is named after the layer's
/// class with a per-class counter in `model.layers` order (`conv2d`, `conv2d_1`, …), not after
/// the layer. From Keras 3.6 each `vars` group has a `name` attribute with the layer's real
/// name; older files are matched through the group names (see `load_weights`).
fn read_keras3_weights(source: &Source, file: &hdf5::File) -> Result<SavedWeights> {
    let layers_group = file.group("layers")?;
    let mut layers = Vec::new();
    for name in layers_group.member_names()? {
        let group = layers_group.group(&name)?;
        let Ok(vars) = group.group("vars") else { continue };
        let mut weights = Vec::new();
        let mut indices: Vec<usize> = vars.member_names()?.iter().filter_map(|n| n.parse().ok()).collect();
        indices.sort_unstable();
        for index in indices {
            let dataset = vars.dataset(&index.to_string())?;
            weights.push(float_weight(source, &name, &index.to_string(), format!("/layers/{name}/vars/{index}"), dataset)?);
        }
        let real_name = string_attr(&vars, "name").unwrap_or_else(|| name.clone());
        layers.push(SavedLayer { name: real_name, weights, keras3_group: Some(name) });
    }
    Ok(SavedWeights { path: source.path.into(), layout: Layout::Keras3, keras_version: None, layers })
}
