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
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use hdf5::{Dataset, Group, Location};
use tch::Tensor;

use super::global_heap;
use super::hdf5_image::open_image_in_place;
use super::hdf5_text::read_string_list;
use super::input::check_input;
use super::isolated::{hdf5_limits, isolated, SharedBuffer, Wire};
use super::limits;
use super::reading_process::ReadingProcess;

/// Which Keras wrote the weights, as far as the layout tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileLayout {
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

/// A weight's values: already in memory (safetensors, conversions), or still in the HDF5 file the
/// weights were listed from (read by [`SavedWeights::read_values`]).
pub enum WeightValue {
    Loaded(Tensor),
    InFile { layer: String },
}

impl SavedWeight {
    /// A weight whose values are already in memory.
    pub fn loaded(name: String, dataset: String, value: Tensor) -> Self {
        Self { name, dataset, shape: value.size(), value: WeightValue::Loaded(value) }
    }

    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

pub struct SavedLayer {
    pub name: String,
    pub weights: Vec<SavedWeight>,
    /// Keras 3 `.weights.h5` only: the path of the group the layer is stored under:
    /// `layers/conv2d_1` (named after the layer's class and position rather than the layer), or a
    /// subclassed model's attribute path (`layer1/layers/basic_block/conv1`).
    pub keras3_group: Option<String>,
}

/// Every layer of a file (weightless ones included, as the file lists them).
pub struct SavedWeights {
    pub path: PathBuf,
    pub layout: FileLayout,
    pub keras_version: Option<String>,
    pub layers: Vec<SavedLayer>,
    /// The HDF5 file that [`WeightValue::InFile`] values are still in.
    pub source: Option<Arc<H5Source>>,
}

impl SavedWeights {
    /// The values of `weights` (all from these `SavedWeights`) as float32; float16, bfloat16
    /// and float64 are converted, as Keras does. Values still in the HDF5 file are read in one
    /// pass, in a child process ([`super::isolated`]).
    pub fn read_values(&self, weights: &[&SavedWeight]) -> Result<Vec<Tensor>> {
        // Where each value still in the file goes in one shared buffer: (dataset, layer, start, count).
        let mut in_file: Vec<(String, String, usize, usize)> = Vec::new();
        let mut total = 0usize;
        for weight in weights {
            if let WeightValue::InFile { layer } = &weight.value {
                let count = usize::try_from(weight.numel()).context("a weight's shape is negative")?;
                in_file.push((weight.dataset.clone(), layer.clone(), total, count));
                total = total.checked_add(count).context("the weights' sizes overflow")?;
            }
        }
        let mut values = SharedBuffer::<f32>::new(total)?;
        if !in_file.is_empty() {
            let source = self.source.as_ref().context("weights listed as in an HDF5 file, but no file is open")?;
            let name = source.name().display().to_string();
            let buffer = values.as_mut_slice();
            source.read(|file| {
                for (dataset, layer, start, count) in &in_file {
                    file.dataset(dataset)
                        .map_err(anyhow::Error::from)
                        .and_then(|d| read_as_f32_into(&d, &mut buffer[*start..*start + *count]))
                        .with_context(|| format!("{name}: reading weight '{dataset}' of layer '{layer}'"))?;
                }
                Ok(0u8)
            })?;
        }
        let mut in_file = in_file.iter();
        weights
            .iter()
            .map(|w| match &w.value {
                WeightValue::Loaded(tensor) => Ok(tensor.to_kind(tch::Kind::Float)),
                WeightValue::InFile { .. } => {
                    let (_, _, start, count) = in_file.next().context("fewer values than weights")?;
                    Ok(Tensor::from_slice(&values.as_slice()[*start..*start + *count]).reshape(&w.shape))
                }
            })
            .collect()
    }

    pub fn layer(&self, name: &str) -> Option<&SavedLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Layers that carry weights.
    pub fn weighted_layers(&self) -> impl Iterator<Item = &SavedLayer> {
        self.layers.iter().filter(|l| !l.weights.is_empty())
    }
}

/// Where the bytes of an HDF5 file from a user are. Every read of them goes through
/// [`H5Source::read`], in a child process.
pub enum H5Source {
    /// A file on disk, of the size it had when it was checked.
    File { path: PathBuf, size: u64 },
    /// An HDF5 file held in memory (a `.keras` archive's `model.weights.h5`), named for messages.
    Memory { name: PathBuf, bytes: Vec<u8> },
}

impl H5Source {
    /// `path` as an HDF5 input: a regular, non-empty file whose global heap libhdf5 can walk.
    pub fn file(path: &Path) -> Result<Self> {
        let size = check_input(path, "the HDF5 file")?.len();
        if size == 0 {
            bail!("{} is empty (0 bytes), not a Keras HDF5 file", path.display());
        }
        global_heap::check_file(path, size)?;
        Ok(Self::File { path: path.to_path_buf(), size })
    }

    /// The HDF5 file in `bytes`, called `name` in messages.
    pub fn memory(name: PathBuf, bytes: Vec<u8>) -> Result<Self> {
        if bytes.is_empty() {
            bail!("{} is empty (0 bytes), not an HDF5 file", name.display());
        }
        global_heap::check_in_memory(&bytes).with_context(|| format!("reading {}", name.display()))?;
        Ok(Self::Memory { name, bytes })
    }

    pub fn name(&self) -> &Path {
        match self {
            Self::File { path, .. } => path,
            Self::Memory { name, .. } => name,
        }
    }

    /// Its size in bytes (what declared dataset sizes are held to).
    pub fn size(&self) -> u64 {
        match self {
            Self::File { size, .. } => *size,
            Self::Memory { bytes, .. } => bytes.len() as u64,
        }
    }

    /// Open the file and run `job` on it in a child process; its answer, or an error if
    /// libhdf5 failed, crashed or hung on the file.
    pub fn read<T: Wire>(&self, job: impl FnOnce(&hdf5::File) -> Result<T>) -> Result<T> {
        let what = format!("reading {}", self.name().display());
        isolated(&what, hdf5_limits(self.size()), || job(&self.open()?))
    }

    /// A reading process that keeps the file open and answers each request with
    /// `serve(file, request)`: for reading a file piece by piece (a dataset's batches).
    pub fn reading_process<Q: Wire, A: Wire>(&self, mut serve: impl FnMut(&hdf5::File, Q) -> Result<A>) -> Result<ReadingProcess<Q, A>> {
        let what = format!("reading {}", self.name().display());
        let mut file = None;
        ReadingProcess::start(&what, hdf5_limits(self.size()), move |request| {
            if file.is_none() {
                file = Some(self.open()?);
            }
            serve(file.as_ref().expect("opened above"), request)
        })
    }

    /// Open the file; only in a reading process (see [`Self::read`]).
    fn open(&self) -> Result<hdf5::File> {
        match self {
            Self::File { path, .. } => hdf5::File::open(path).map_err(|e| {
                anyhow::anyhow!("cannot open {}: it is not a readable HDF5 file (truncated or another format?): {e}", path.display())
            }),
            // SAFETY: only ever called in a reading process, where `bytes` (part of `self`)
            // lives until the process exits.
            Self::Memory { name, bytes } => unsafe { open_image_in_place(bytes) }.with_context(|| format!("reading {}", name.display())),
        }
    }
}

/// Read the weights of any Keras HDF5 layout (values stay in the file until read).
pub fn read_h5_weights(path: &Path) -> Result<SavedWeights> {
    read_h5_weights_of(H5Source::file(path)?)
}

/// [`read_h5_weights`] of any [`H5Source`].
pub fn read_h5_weights_of(source: H5Source) -> Result<SavedWeights> {
    read_h5_weights_shared(Arc::new(source))
}

/// [`read_h5_weights`] of an [`H5Source`] other readers share.
pub fn read_h5_weights_shared(source: Arc<H5Source>) -> Result<SavedWeights> {
    let mut weights = source.read(|file| read_h5_weights_from(file, source.name(), source.size()))?;
    weights.source = Some(source);
    Ok(weights)
}

/// An optimizer's stored state as listed before it is read: its step count, and its other
/// variables as the weights of one layer; `None` when the file has none.
pub type ListedOptimizerState = Option<(i64, SavedWeights)>;

/// A full-model HDF5 file (`model.save("x.h5")`): its `model_config` text, its
/// `training_config` text when it has one, and its weights — or why they could not be listed,
/// kept apart so that a broken configuration is reported first, as Keras rebuilds the model
/// before it reads any weight.
pub struct KerasModelH5 {
    pub model_config: String,
    pub training_config: Option<String>,
    pub weights: Result<SavedWeights>,
    /// tf.keras's `optimizer_weights` group, when the file has one: its step count, and its slot
    /// weights as one layer named `optimizer_weights` whose weights keep their full names
    /// (`Adam/m/conv1/kernel:0`); or why it could not be listed.
    pub optimizer_weights: Result<ListedOptimizerState>,
}

/// Read a full-model HDF5 file, or `None` if it has no `model_config` (weights only).
pub fn read_h5_model(path: &Path) -> Result<Option<KerasModelH5>> {
    let source = Arc::new(H5Source::file(path)?);
    let answer = source.read(|file| {
        let Ok(attr) = file.attr("model_config") else { return Ok(None) };
        let model_config = attribute_text(&attr, path, "model_config")?;
        let training_config = match file.attr("training_config") {
            Ok(attr) => Some(attribute_text(&attr, path, "training_config")?),
            Err(_) => None,
        };
        let weights = read_h5_weights_from(file, path, source.size()).map_err(|e| format!("{e:#}"));
        let optimizer = read_optimizer_weights(file, path, source.size()).map_err(|e| format!("{e:#}"));
        Ok(Some((((model_config, training_config), weights), optimizer)))
    })?;
    let in_source = |mut weights: SavedWeights| {
        weights.source = Some(Arc::clone(&source));
        weights
    };
    Ok(answer.map(|(((model_config, training_config), weights), optimizer)| KerasModelH5 {
        model_config,
        training_config,
        weights: weights.map_err(anyhow::Error::msg).map(in_source),
        optimizer_weights: optimizer
            .map_err(anyhow::Error::msg)
            .map(|state| state.map(|(iterations, weights)| (iterations, in_source(weights)))),
    }))
}

/// tf.keras's `optimizer_weights` (2.11+: `iteration:0`, then `Adam/m/<layer>/<weight>:0` …;
/// ≤ 2.10: `Adam/iterations:0` …): the step count and the listed float weights, unread.
fn read_optimizer_weights(file: &hdf5::File, path: &Path, file_size: u64) -> Result<ListedOptimizerState> {
    let Ok(group) = file.group("optimizer_weights") else { return Ok(None) };
    let source = Source { path, file_size };
    let names = read_chunked_list(&group, "weight_names").with_context(|| format!("{}: reading optimizer_weights", path.display()))?;
    let (mut iterations, mut weights) = (None, Vec::new());
    for full in names {
        let dataset = group
            .dataset(&full)
            .with_context(|| format!("{}: optimizer_weights lists '{full}' but the file has no such dataset", path.display()))?;
        if full == "iteration:0" || full.ends_with("iterations:0") {
            let count = dataset.read_scalar::<i64>().with_context(|| format!("{}: reading the step count '{full}'", path.display()))?;
            iterations = Some(count);
        } else {
            let weight = numeric_weight(&source, "optimizer_weights", &full, format!("{}/{full}", group.name()), &dataset)?;
            weights.push(SavedWeight { name: full, ..weight });
        }
    }
    let iterations = iterations.with_context(|| format!("{}: optimizer_weights lists no step count (iteration:0)", path.display()))?;
    let layer = SavedLayer { name: "optimizer_weights".into(), weights, keras3_group: None };
    let keras_version = string_attr(file, "keras_version");
    Ok(Some((
        iterations,
        SavedWeights { path: path.into(), layout: FileLayout::FullModel, keras_version, layers: vec![layer], source: None },
    )))
}

/// Whether the HDF5 file at `path` has a `model_config` (describes its own architecture).
pub fn has_model_config(path: &Path) -> Result<bool> {
    let answer: u8 = H5Source::file(path)?.read(|file| Ok(u8::from(file.attr("model_config").is_ok())))?;
    Ok(answer == 1)
}

/// A JSON attribute's text; errors name the file and the attribute.
fn attribute_text(attr: &hdf5::Attribute, path: &Path, name: &str) -> Result<String> {
    read_string_list(attr)
        .with_context(|| format!("{}: attribute '{name}' should hold Keras's JSON text", path.display()))?
        .into_iter()
        .next()
        .with_context(|| format!("{}: attribute '{name}' is an empty list, expected Keras's JSON text", path.display()))
}

/// Read the weights of an open Keras HDF5 file of `file_size` bytes (`path` names it in
/// messages; for a `.keras` archive, the member inside it). Runs in the reading process.
fn read_h5_weights_from(file: &hdf5::File, path: &Path, file_size: u64) -> Result<SavedWeights> {
    let source = Source { path, file_size };
    let keras_version = string_attr(file, "keras_version");
    if file.attr("model_config").is_ok() {
        let group =
            file.group("model_weights").with_context(|| format!("{} has a model_config but no model_weights group", path.display()))?;
        let layers = read_layer_groups(&source, &group)?;
        return Ok(SavedWeights { path: path.into(), layout: FileLayout::FullModel, keras_version, layers, source: None });
    }
    if has_layer_names(file) {
        let layers = read_layer_groups(&source, file)?;
        let keras1 = keras_version.as_deref().is_none_or(|v| v.starts_with('1'))
            && layers.iter().flat_map(|l| &l.weights).any(|w| w.dataset.contains("_W:") || w.dataset.ends_with("_W"));
        let layout = if keras1 { FileLayout::Keras1 } else { FileLayout::WeightsOnly };
        let layers = if keras1 { layers.into_iter().map(rename_keras1_weights).collect::<Result<_>>()? } else { layers };
        return Ok(SavedWeights { path: path.into(), layout, keras_version, layers, source: None });
    }
    // Keras 3 writes the model's own (empty) `vars` at the root, and its layers under `layers`
    // or, for a subclassed model, under its attribute names.
    if file.group("layers").is_ok() || file.group("vars").is_ok() {
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
            let group =
                root.group(&layer).with_context(|| format!("{}: layer_names lists '{layer}' but there is no such group", where_()))?;
            let weight_names = read_chunked_list(&group, "weight_names")
                .with_context(|| format!("{}: reading weight_names of layer '{layer}'", path.display()))?;
            let weights = weight_names
                .into_iter()
                .map(|full| {
                    let dataset = group.dataset(&full).with_context(|| {
                        format!("{}: layer '{layer}' lists weight '{full}' but the file has no such dataset", path.display())
                    })?;
                    numeric_weight(source, &layer, &full, format!("{}/{full}", group.name()), &dataset)
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

/// A float (or integer: Normalization's `count`) dataset as a [`SavedWeight`] (not read yet; read
/// as float32), after checking its element type and
/// that its declared size is one the file can hold; errors name the file, layer, dataset,
/// element type and shape.
/// `listed` is the weight as the layer lists it (`conv1/kernel:0`; Keras 3: its index).
fn numeric_weight(source: &Source, layer: &str, listed: &str, path_in_file: String, dataset: &Dataset) -> Result<SavedWeight> {
    let file = source.path.display();
    let element =
        describe_element_type(dataset).with_context(|| format!("{file}: weight '{listed}' of layer '{layer}': unreadable element type"))?;
    let (ElementType::Float(element_bytes) | ElementType::Integer(element_bytes)) = element else {
        bail!("{file}: weight '{listed}' of layer '{layer}' has element type {element}, expected numbers");
    };
    let dims = dataset.shape();
    let shape: Vec<i64> = dims.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect();
    limits::check_declared_size(&dims, element_bytes, !dataset.filters().is_empty(), source.file_size)
        .map_err(|why| anyhow::anyhow!("{file}: weight '{listed}' of layer '{layer}' ({element}): {why}"))?;
    Ok(SavedWeight {
        name: short_weight_name(listed),
        dataset: path_in_file,
        shape,
        value: WeightValue::InFile { layer: layer.to_string() },
    })
}

/// What a dataset's elements are, from the HDF5 type itself (not every float type has a Rust
/// twin: float16 and bfloat16 are read through HDF5's own conversion).
enum ElementType {
    Float(usize),
    Integer(usize),
    Other(String),
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ElementType::Float(bytes) => write!(f, "float{}", bytes * 8),
            ElementType::Integer(bytes) => write!(f, "int{}", bytes * 8),
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
        hdf5_sys::h5t::H5T_class_t::H5T_INTEGER => ElementType::Integer(dtype.size()),
        _ => ElementType::Other(match dtype.to_descriptor() {
            Ok(descriptor) => descriptor.to_string(),
            Err(_) => format!("{class:?} of {} bytes", dtype.size()),
        }),
    })
}

/// Read any float dataset as float32 into `values`, which must hold exactly its elements,
/// letting HDF5 convert (float16, bfloat16, float64, …).
fn read_as_f32_into(dataset: &Dataset, values: &mut [f32]) -> Result<()> {
    if dataset.size() != values.len() {
        bail!("the dataset holds {} values, its listed shape {}", dataset.size(), values.len());
    }
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
    Ok(())
}

/// Keras 3 `.weights.h5`: `<path>/vars/<i>` for every layer. A functional or `Sequential` model
/// keeps its layers at `layers/<group>`, the group named after the layer's class with a per-class
/// counter in `model.layers` order (`conv2d`, `conv2d_1`, …), not after the layer; a subclassed
/// model keeps them under its attribute names, nested as its objects are
/// (`layer1/layers/basic_block/conv1`). From Keras 3.6 each `vars` group has a `name` attribute
/// with the layer's real name; older files are matched through the group names (see
/// `load_weights`). The root's `optimizer` (training state) and `vars` (the model's own) are not
/// layers.
fn read_keras3_weights(source: &Source, file: &hdf5::File) -> Result<SavedWeights> {
    let mut layers = Vec::new();
    let mut groups_left = MAX_KERAS3_GROUPS;
    for name in file.member_names()? {
        if name == "optimizer" || name == "vars" {
            continue;
        }
        let Ok(group) = file.group(&name) else { continue };
        read_keras3_group(source, &group, &name, 1, &mut groups_left, &mut layers)?;
    }
    Ok(SavedWeights { path: source.path.into(), layout: FileLayout::Keras3, keras_version: None, layers, source: None })
}

/// Keras 3's optimizer variables (`optimizer/vars/0` the step count, then the others in their
/// order: the learning rate unless it follows a schedule, then each trainable variable's
/// slots), listed unread as one layer `optimizer` whose weights are named `1`, `2`, …; `None`
/// when the file has none.
pub fn read_keras3_optimizer(source: Arc<H5Source>) -> Result<ListedOptimizerState> {
    let path = source.name().to_path_buf();
    let size = source.size();
    let answer = source.read(|file| {
        let Ok(vars) = file.group("optimizer/vars") else { return Ok(None) };
        let source = Source { path: &path, file_size: size };
        let count = vars.member_names()?.len();
        let iterations = vars
            .dataset("0")
            .and_then(|d| d.read_scalar::<i64>())
            .with_context(|| format!("{}: reading the optimizer's step count (optimizer/vars/0)", path.display()))?;
        let weights = (1..count)
            .map(|i| {
                let dataset = vars
                    .dataset(&i.to_string())
                    .with_context(|| format!("{}: optimizer/vars has {count} members but no '{i}'", path.display()))?;
                let weight = numeric_weight(&source, "optimizer", &i.to_string(), format!("optimizer/vars/{i}"), &dataset)?;
                Ok(SavedWeight { name: i.to_string(), ..weight })
            })
            .collect::<Result<Vec<_>>>()?;
        let layer = SavedLayer { name: "optimizer".into(), weights, keras3_group: Some("optimizer".into()) };
        Ok(Some((
            iterations,
            SavedWeights { path: path.clone(), layout: FileLayout::Keras3, keras_version: None, layers: vec![layer], source: None },
        )))
    })?;
    Ok(answer.map(|(iterations, mut weights): (i64, SavedWeights)| {
        weights.source = Some(source);
        (iterations, weights)
    }))
}

/// How deep a Keras 3 file's layers may nest (a model in a model in a block …), and how many
/// groups it may have in all: far above real files, and a bound on a file whose links loop.
const MAX_KERAS3_DEPTH: usize = 16;
const MAX_KERAS3_GROUPS: usize = 100_000;

/// The layer stored at `path` (if it has a `vars` group) and every layer nested under it.
fn read_keras3_group(
    source: &Source,
    group: &Group,
    path: &str,
    depth: usize,
    groups_left: &mut usize,
    layers: &mut Vec<SavedLayer>,
) -> Result<()> {
    if depth > MAX_KERAS3_DEPTH {
        bail!("{}: '{path}' nests deeper than {MAX_KERAS3_DEPTH} groups; not a Keras weights file", source.path.display());
    }
    *groups_left = groups_left
        .checked_sub(1)
        .with_context(|| format!("{}: more than {MAX_KERAS3_GROUPS} groups; not a Keras weights file", source.path.display()))?;
    for name in group.member_names()? {
        let Ok(child) = group.group(&name) else { continue };
        if name == "vars" {
            layers.push(read_keras3_vars(source, &child, path)?);
        } else {
            read_keras3_group(source, &child, &format!("{path}/{name}"), depth + 1, groups_left, layers)?;
        }
    }
    Ok(())
}

/// The weights in `<path>/vars`, in index order.
fn read_keras3_vars(source: &Source, vars: &Group, path: &str) -> Result<SavedLayer> {
    let mut indices: Vec<usize> = vars.member_names()?.iter().filter_map(|n| n.parse().ok()).collect();
    indices.sort_unstable();
    let weights = indices
        .into_iter()
        .map(|index| {
            let dataset = vars.dataset(&index.to_string())?;
            numeric_weight(source, path, &index.to_string(), format!("/{path}/vars/{index}"), &dataset)
        })
        .collect::<Result<Vec<_>>>()?;
    let group_name = path.rsplit('/').next().unwrap_or(path);
    let name = string_attr(vars, "name").unwrap_or_else(|| group_name.to_string());
    Ok(SavedLayer { name, weights, keras3_group: Some(path.to_string()) })
}

// --- What crosses from the reading process: the listing, with values left in the file.

impl Wire for FileLayout {
    fn put(&self, out: &mut Vec<u8>) {
        let tag: u8 = match self {
            FileLayout::FullModel => 0,
            FileLayout::WeightsOnly => 1,
            FileLayout::Keras1 => 2,
            FileLayout::Keras3 => 3,
        };
        tag.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(match u8::take(input)? {
            0 => FileLayout::FullModel,
            1 => FileLayout::WeightsOnly,
            2 => FileLayout::Keras1,
            3 => FileLayout::Keras3,
            other => bail!("unknown layout tag {other}"),
        })
    }
}

impl Wire for SavedWeight {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.dataset.put(out);
        self.shape.put(out);
        // Only listings of HDF5 files cross, and their values are all still in the file.
        let layer = match &self.value {
            WeightValue::InFile { layer } => layer.clone(),
            WeightValue::Loaded(_) => unreachable!("an in-memory weight never crosses from a reading process"),
        };
        layer.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(SavedWeight {
            name: String::take(input)?,
            dataset: String::take(input)?,
            shape: Vec::take(input)?,
            value: WeightValue::InFile { layer: String::take(input)? },
        })
    }
}

impl Wire for SavedLayer {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.weights.put(out);
        self.keras3_group.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(SavedLayer { name: String::take(input)?, weights: Vec::take(input)?, keras3_group: Wire::take(input)? })
    }
}

impl Wire for SavedWeights {
    fn put(&self, out: &mut Vec<u8>) {
        self.path.put(out);
        self.layout.put(out);
        self.keras_version.put(out);
        self.layers.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(SavedWeights {
            path: PathBuf::take(input)?,
            layout: FileLayout::take(input)?,
            keras_version: Wire::take(input)?,
            layers: Vec::take(input)?,
            source: None,
        })
    }
}
