//! A dataset that yields batches on demand, with a known length — what `fit`, `evaluate` and
//! transfer learning read, whatever the samples come from:
//! - image folders (`folders::FolderSource`), decoded batch by batch by worker threads;
//! - a course-layout HDF5 file (`course_file::CourseFileSource`), read one batch at a time;
//! - tensors already in memory (`TensorSource`): small data, and cached bottleneck features.
//!
//! A source returns raw samples (pixels 0-255, integer labels); the dataset then applies Keras's
//! `preprocess_input` and turns labels into the loss's targets (Keras's `label_mode`), on the
//! thread that trains, so the numbers are those of the whole-array path.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::loader::{Batches, Loading};
use crate::imaging::{preprocess_input, PreprocessMode};

/// Where samples come from. Thread-safe, so worker threads can read batches ahead.
pub trait SampleSource: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices` (in that order): inputs stacked on axis 0 (any dtype; images
    /// as 0-255 values) and their labels or targets.
    fn read(&self, indices: &[usize]) -> Result<(Tensor, Tensor)>;

    /// One input's shape (e.g. height, width, channels).
    fn input_shape(&self) -> Vec<i64>;

    /// The labels (or targets) alone, without reading the inputs.
    fn labels(&self, indices: &[usize]) -> Result<Tensor>;

    /// What these samples are (files with sizes and times, or a caller's description), for
    /// cache keys: a change in the data changes it.
    fn identity(&self, indices: &[usize]) -> String;

    /// A sample's name for people (its file), where it has one.
    fn sample_name(&self, _index: usize) -> Option<String> {
        None
    }

    /// Whether reading costs enough (decoding files) to be worth doing on worker threads.
    fn worth_prefetching(&self) -> bool {
        false
    }
}

/// How integer labels become targets, as Keras's `label_mode` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMode {
    /// One float per sample, shape (N, 1): sparse categorical cross-entropy's targets.
    Int,
    /// One-hot float32 (N, classes): categorical cross-entropy's targets.
    Categorical,
    /// 0.0 or 1.0, shape (N, 1): binary cross-entropy's targets.
    Binary,
}

impl LabelMode {
    pub fn targets(self, labels: &Tensor, classes: usize) -> Tensor {
        match self {
            Self::Categorical => super::one_hot(labels, classes),
            Self::Int | Self::Binary => labels.to_kind(Kind::Float).reshape([-1, 1]),
        }
    }
}

/// Samples from a source, in an order of its own (a split, a subset), with the conversion that
/// makes a raw batch what the model and the loss take.
#[derive(Clone)]
pub struct Dataset {
    source: Arc<dyn SampleSource>,
    /// Which of the source's samples, in this dataset's order.
    positions: Arc<Vec<usize>>,
    classes: Vec<String>,
    preprocess: Option<PreprocessMode>,
    label_mode: Option<LabelMode>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset").field("len", &self.len()).field("classes", &self.classes).finish()
    }
}

impl Dataset {
    /// Every sample of `source`, returned as the source reads it.
    pub fn new(source: Arc<dyn SampleSource>, classes: Vec<String>) -> Self {
        let positions = Arc::new((0..source.len()).collect());
        Self { source, positions, classes, preprocess: None, label_mode: None }
    }

    /// Inputs and targets already in memory (axis 0 = samples), returned as they are.
    pub fn from_tensors(x: &Tensor, y: &Tensor, identity: &str) -> Result<Self> {
        Ok(Self::new(Arc::new(TensorSource::new(x, y, identity)?), Vec::new()))
    }

    /// Apply Keras's `preprocess_input(x, mode)` to each batch (images read as 0-255).
    pub fn with_preprocessing(self, mode: PreprocessMode) -> Self {
        Self { preprocess: Some(mode), ..self }
    }

    /// Turn each batch's integer labels into targets (needs the class names).
    pub fn with_label_mode(self, mode: LabelMode) -> Self {
        Self { label_mode: Some(mode), ..self }
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// One input's shape as the source reads it (e.g. [height, width, channels]).
    pub fn input_shape(&self) -> Vec<i64> {
        self.source.input_shape()
    }

    /// The samples at these positions of this dataset, in that order.
    pub fn select(&self, positions: &[usize]) -> Self {
        let positions = positions.iter().map(|&p| self.positions[p]).collect();
        Self { positions: Arc::new(positions), ..self.clone() }
    }

    /// The first `n` samples (all when there are fewer).
    pub fn take(&self, n: usize) -> Self {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// Keras's `validation_split` for arrays: the *last* `fraction` of the samples (before any
    /// shuffling) held out; None when that is no sample.
    pub fn split_last(&self, fraction: f64) -> (Self, Option<Self>) {
        let n = self.len();
        let at = n - ((n as f64) * fraction) as usize;
        let validation = (at < n).then(|| self.select(&(at..n).collect::<Vec<_>>()));
        (self.select(&(0..at).collect::<Vec<_>>()), validation)
    }

    /// What the samples are and how they are converted, for cache keys.
    pub fn identity(&self) -> String {
        let preprocess = self.preprocess.map_or("as stored", |m| m.name());
        format!("{}\npreprocess {preprocess} labels {:?}", self.source.identity(&self.positions), self.label_mode)
    }

    /// Every sample's label as the source stores it (class indices for folders and course
    /// files), in order, without reading the inputs.
    pub fn labels(&self) -> Result<Tensor> {
        self.source.labels(&self.positions)
    }

    /// Every sample's name (file), in order, when the source has them.
    pub fn sample_names(&self) -> Option<Vec<String>> {
        self.positions.iter().map(|&i| self.source.sample_name(i)).collect()
    }

    /// Every sample's target, in order, without reading the inputs.
    pub fn targets(&self) -> Result<Tensor> {
        let labels = self.source.labels(&self.positions)?;
        Ok(self.finish_targets(&labels))
    }

    /// Batches of `batch_size` in `order` (positions in this dataset; None = in order), from
    /// batch `first_batch` on, read ahead as `loading` says when the source is worth it.
    pub fn batches(&self, order: Option<&[usize]>, batch_size: usize, first_batch: usize, loading: &Loading) -> Batches {
        let order: Vec<usize> = match order {
            Some(order) => order.iter().map(|&p| self.positions[p]).collect(),
            None => self.positions.to_vec(),
        };
        let batches: Vec<Vec<usize>> = order.chunks(batch_size.max(1)).skip(first_batch).map(<[usize]>::to_vec).collect();
        let loading = if self.source.worth_prefetching() { *loading } else { Loading::on_this_thread() };
        Batches::start(self.clone(), batches, loading)
    }

    /// Read one batch of source indices as the model takes it (called by the loader).
    pub(crate) fn read_raw(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        self.source.read(indices)
    }

    /// A raw batch converted: preprocessing and targets (on the consuming thread).
    pub(crate) fn finish(&self, (x, labels): (Tensor, Tensor)) -> (Tensor, Tensor) {
        let x = match self.preprocess {
            Some(mode) => preprocess_input(&x, mode),
            None => x,
        };
        (x, self.finish_targets(&labels))
    }

    fn finish_targets(&self, labels: &Tensor) -> Tensor {
        match self.label_mode {
            Some(mode) => mode.targets(labels, self.classes.len()),
            None => labels.shallow_clone(),
        }
    }
}

/// Inputs and targets held as tensors. libtorch tensors are not `Sync`; the lock makes the
/// source shareable (it is read on the training thread, see `worth_prefetching`).
pub struct TensorSource {
    tensors: Mutex<(Tensor, Tensor)>,
    len: usize,
    identity: String,
}

impl TensorSource {
    pub fn new(x: &Tensor, y: &Tensor, identity: &str) -> Result<Self> {
        let (n, targets) = (x.size().first().copied().unwrap_or(0), y.size().first().copied().unwrap_or(0));
        if n != targets {
            bail!("{n} inputs but {targets} targets");
        }
        Ok(Self { tensors: Mutex::new((x.shallow_clone(), y.shallow_clone())), len: n as usize, identity: identity.to_string() })
    }

    fn select(tensor: &Tensor, indices: &[usize]) -> Tensor {
        // A run of consecutive indices (evaluation, unshuffled data) is a view, not a copy.
        let contiguous = indices.windows(2).all(|w| w[1] == w[0] + 1);
        match indices.first() {
            Some(&first) if contiguous => tensor.narrow(0, first as i64, indices.len() as i64),
            _ => tensor
                .index_select(0, &Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(tensor.device())),
        }
    }
}

impl SampleSource for TensorSource {
    fn len(&self) -> usize {
        self.len
    }

    fn input_shape(&self) -> Vec<i64> {
        self.tensors.lock().map(|t| t.0.size()[1..].to_vec()).unwrap_or_default()
    }

    fn read(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let tensors = self.tensors.lock().map_err(|_| anyhow::anyhow!("a reader of the in-memory data panicked"))?;
        Ok((Self::select(&tensors.0, indices), Self::select(&tensors.1, indices)))
    }

    fn labels(&self, indices: &[usize]) -> Result<Tensor> {
        let tensors = self.tensors.lock().map_err(|_| anyhow::anyhow!("a reader of the in-memory data panicked"))?;
        Ok(Self::select(&tensors.1, indices))
    }

    fn identity(&self, indices: &[usize]) -> String {
        if indices.len() == self.len && indices.iter().enumerate().all(|(i, &j)| i == j) {
            self.identity.clone()
        } else {
            format!("{} samples {indices:?}", self.identity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_batches_keep_positions() {
        let x = Tensor::arange(10, (Kind::Float, tch::Device::Cpu)).view([10, 1]);
        let y = Tensor::arange(10, (Kind::Int64, tch::Device::Cpu));
        let data = Dataset::from_tensors(&x, &y, "ten").unwrap();
        let (train, validation) = data.split_last(0.25);
        assert_eq!((train.len(), validation.as_ref().map(Dataset::len)), (8, Some(2)));
        let targets: Vec<i64> = Vec::try_from(validation.unwrap().targets().unwrap()).unwrap();
        assert_eq!(targets, [8, 9], "the last fraction is held out");
        let order = [7, 0, 3, 5, 1, 2, 4, 6];
        let seen: Vec<Vec<i64>> =
            train.batches(Some(&order), 3, 1, &Loading::default()).map(|batch| Vec::try_from(batch.unwrap().1).unwrap()).collect();
        assert_eq!(seen, [vec![5, 1, 2], vec![4, 6]], "batches from the second on, in the order given");
        assert!(data.take(3).split_last(0.0).1.is_none());
    }

    #[test]
    fn label_modes_are_keras_targets() {
        let labels = Tensor::from_slice(&[2i64, 0]);
        let one_hot = LabelMode::Categorical.targets(&labels, 3);
        assert_eq!(Vec::<f32>::try_from(one_hot.flatten(0, -1)).unwrap(), [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(LabelMode::Int.targets(&labels, 3).size(), [2, 1]);
    }
}
