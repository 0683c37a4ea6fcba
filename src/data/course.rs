//! The course's HDF5 datasets (SIGNS, Happy House, cat/non-cat) and the notebooks' helpers
//! `load_dataset`, the `/255` normalisation and `convert_to_one_hot`.
//!
//! Layout (as in `train_signs.h5` / `test_signs.h5`): `{train,test}_set_x` uint8 N×H×W×C,
//! `{train,test}_set_y` integer labels stored as (N,) or (1, N), `list_classes` (integers or
//! fixed/variable-length strings).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hdf5::types::TypeDescriptor;
use ndarray::{Array1, Array4, Ix4};
use tch::{Kind, Tensor};

use crate::graph::tuple;
use crate::io::hdf5_text::read_labels;
use crate::io::isolated::Bulk;
use crate::io::limits::check_declared_size;
use crate::io::saved_weights::H5Source;

/// One split of a course file: images (N×H×W×C, uint8, channels-last like Keras) and labels.
#[derive(Debug, Clone)]
pub struct Split {
    pub x: Array4<u8>,
    pub y: Array1<i64>,
}

/// The notebooks' data cell: `number of training examples = …`, then the four `… shape: (…)`
/// lines, from the tensors as the model will see them.
pub fn print_notebook_shapes(x_train: &Tensor, y_train: &Tensor, x_test: &Tensor, y_test: &Tensor) {
    println!("number of training examples = {}", x_train.size()[0]);
    println!("number of test examples = {}", x_test.size()[0]);
    println!("X_train shape: {}", tuple(&x_train.size()));
    println!("Y_train shape: {}", tuple(&y_train.size()));
    println!("X_test shape: {}", tuple(&x_test.size()));
    println!("Y_test shape: {}", tuple(&y_test.size()));
}

/// What the notebooks' `load_dataset()` returns: both splits and the class names.
#[derive(Debug, Clone)]
pub struct CourseDataset {
    pub train: Split,
    pub test: Split,
    pub classes: Vec<String>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.x.shape()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep only the first `n` examples, for quick runs.
    pub fn truncate(&mut self, n: usize) {
        let keep = n.min(self.len());
        self.x.slice_collapse(ndarray::s![..keep, .., .., ..]);
        self.y.slice_collapse(ndarray::s![..keep]);
    }

    /// The notebook's `X = X_orig / 255.`: float32 N×H×W×C in [0, 1].
    pub fn normalized_images(&self) -> Tensor {
        self.pixel_values() / 255.0
    }

    /// The images as float32 N×H×W×C, 0-255 (what `img_to_array` gives).
    pub fn pixel_values(&self) -> Tensor {
        let shape: Vec<i64> = self.x.shape().iter().map(|&d| d as i64).collect();
        let data = self.x.as_standard_layout();
        Tensor::from_slice(data.as_slice().expect("standard layout")).reshape(&shape).to_kind(Kind::Float)
    }

    /// The notebook's `convert_to_one_hot(Y, C).T`: float32 N×C.
    pub fn one_hot_labels(&self, num_classes: usize) -> Tensor {
        convert_to_one_hot(&self.y, num_classes)
    }
}

/// `convert_to_one_hot(Y, C).T` of the notebooks: one row per example, float32.
pub fn convert_to_one_hot(labels: &Array1<i64>, num_classes: usize) -> Tensor {
    super::one_hot(&Tensor::from_slice(labels.as_slice().expect("contiguous labels")), num_classes)
}

/// Load `train_path` and `test_path` as the notebooks' `load_dataset()` does.
pub fn load_dataset(train_path: &Path, test_path: &Path) -> Result<CourseDataset> {
    let (train, train_classes) = load_split(train_path, "train")?;
    let (test, test_classes) = load_split(test_path, "test")?;
    if train_classes != test_classes {
        bail!("list_classes differs between {} ({train_classes:?}) and {} ({test_classes:?})", train_path.display(), test_path.display());
    }
    if train.x.shape()[1..] != test.x.shape()[1..] {
        bail!(
            "image shapes differ: {} has {:?}, {} has {:?}",
            train_path.display(),
            &train.x.shape()[1..],
            test_path.display(),
            &test.x.shape()[1..]
        );
    }
    Ok(CourseDataset { train, test, classes: train_classes })
}

/// Read whichever split a course file holds, `preferred` (`"train"` or `"test"`) when it has
/// both; errors are about the split actually read.
pub fn load_any_split(path: &Path, preferred: &str) -> Result<(Split, Vec<String>)> {
    read_split(path, |file| split_to_read(file, preferred))
}

/// The split of an open course file to read: `preferred` (`"train"` or `"test"`), or the other
/// one when the file holds only that.
pub(crate) fn split_to_read<'a>(file: &hdf5::File, preferred: &'a str) -> &'a str {
    let other = if preferred == "train" { "test" } else { "train" };
    let has = |prefix: &str| file.dataset(&format!("{prefix}_set_x")).is_ok();
    if has(preferred) || !has(other) {
        preferred
    } else {
        other
    }
}

/// Read `{prefix}_set_x`, `{prefix}_set_y` and `list_classes` from one course file, checking
/// dtypes, ranks, counts and label range; every error names the file and the dataset.
pub fn load_split(path: &Path, prefix: &str) -> Result<(Split, Vec<String>)> {
    read_split(path, |_| prefix)
}

/// A split as it crosses from the reading process: image shape and pixels, labels, classes.
type SplitData = ((Vec<usize>, Bulk<u8>), (Bulk<i64>, Vec<String>));

/// Read the split `choose` picks from the open file, in a child process (see
/// [`crate::io::isolated`]).
fn read_split<'a>(path: &Path, choose: impl FnOnce(&hdf5::File) -> &'a str) -> Result<(Split, Vec<String>)> {
    let source = H5Source::file(path).with_context(|| format!("cannot open {} as an HDF5 file", path.display()))?;
    let file_size = source.size();
    let ((x_shape, x), (y, classes)): SplitData = source.read(|file| read_split_in(file, path, file_size, choose(file)))?;
    let x = Array4::from_shape_vec(<[usize; 4]>::try_from(x_shape.as_slice())?, x.0)
        .with_context(|| format!("{}: the images do not fill their declared shape {x_shape:?}", path.display()))?;
    Ok((Split { x, y: Array1::from(y.0) }, classes))
}

/// What [`read_split`] runs in the reading process.
fn read_split_in(file: &hdf5::File, path: &Path, file_size: u64, prefix: &str) -> Result<SplitData> {
    let split = open_split_in(file, path, file_size, prefix)?;
    let x = split.images.read::<u8, Ix4>().with_context(|| format!("reading {} dataset '{}'", path.display(), split.images.name()))?;
    let shape = x.shape().to_vec();
    Ok(((shape, Bulk(x.as_standard_layout().into_owned().into_raw_vec_and_offset().0)), (Bulk(split.labels), split.classes)))
}

/// A split of an open course file, checked, with its labels and classes read and its images
/// not: `images` is their dataset, uint8 N×H×W×C, of a declared size the file can hold.
pub(crate) struct OpenSplit {
    pub images: hdf5::Dataset,
    pub labels: Vec<i64>,
    pub classes: Vec<String>,
}

/// Open `{prefix}_set_x`, read `{prefix}_set_y` and `list_classes`, checking dtypes, ranks,
/// counts and label range; every error names the file and the dataset. Runs in a reading process.
pub(crate) fn open_split_in(file: &hdf5::File, path: &Path, file_size: u64, prefix: &str) -> Result<OpenSplit> {
    let where_ = |name: &str| format!("{} dataset '{name}'", path.display());
    let x_name = format!("{prefix}_set_x");
    let x_ds = file.dataset(&x_name).with_context(|| format!("{} is missing", where_(&x_name)))?;
    let x_type = x_ds.dtype()?.to_descriptor()?;
    if x_type != TypeDescriptor::Unsigned(hdf5::types::IntSize::U1) {
        bail!("{} has element type {x_type}, expected uint8 images", where_(&x_name));
    }
    if x_ds.ndim() != 4 {
        bail!("{} has shape {:?}, expected N×H×W×C (rank 4)", where_(&x_name), x_ds.shape());
    }
    check_declared_size(&x_ds.shape(), 1, !x_ds.filters().is_empty(), file_size)
        .map_err(|why| anyhow::anyhow!("{}: {why}", where_(&x_name)))?;

    let y_name = format!("{prefix}_set_y");
    let y_ds = file.dataset(&y_name).with_context(|| format!("{} is missing", where_(&y_name)))?;
    let y_type = y_ds.dtype()?.to_descriptor()?;
    if !matches!(y_type, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) {
        bail!("{} has element type {y_type}, expected integer labels", where_(&y_name));
    }
    let y_shape = y_ds.shape();
    let is_row = y_shape.len() == 2 && y_shape[0] == 1;
    if !(y_shape.len() == 1 || is_row) {
        bail!("{} has shape {y_shape:?}, expected (N,) or (1, N)", where_(&y_name));
    }
    check_declared_size(&y_shape, y_ds.dtype()?.size(), !y_ds.filters().is_empty(), file_size)
        .map_err(|why| anyhow::anyhow!("{}: {why}", where_(&y_name)))?;
    let y = y_ds.read_raw::<i64>().with_context(|| format!("reading {}", where_(&y_name)))?;
    if y.len() != x_ds.shape()[0] {
        bail!("{} holds {} labels but {} holds {} images", where_(&y_name), y.len(), x_name, x_ds.shape()[0]);
    }

    let classes =
        file.dataset("list_classes").context("missing").and_then(|ds| read_labels(&ds)).with_context(|| where_("list_classes"))?;
    if let Some((index, &label)) = y.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= classes.len()) {
        bail!(
            "{}: label {label} at index {index} is outside 0..{} (list_classes has {} entries)",
            where_(&y_name),
            classes.len(),
            classes.len()
        );
    }
    Ok(OpenSplit { images: x_ds, labels: y, classes })
}

/// The notebooks' `load_dataset()` cell for the 6-class ResNet50: the course's SIGNS files when
/// `repo_root/datasets` has them, else the default dataset (see [`default_dataset_paths`]; which
/// one is printed as `Data: …`), refused unless it has 6 classes, with the training split cut to
/// its first `limit` images when given.
pub fn load_six_class_dataset(repo_root: &Path, limit: Option<usize>) -> Result<CourseDataset> {
    let (train_path, test_path, description) = default_dataset_paths(repo_root)?;
    println!("Data: {description}");
    let mut dataset = load_dataset(&train_path, &test_path)?;
    if dataset.classes.len() != 6 {
        bail!("the notebook's ResNet50 has 6 classes; {} has {}", train_path.display(), dataset.classes.len());
    }
    if let Some(limit) = limit {
        dataset.train.truncate(limit);
    }
    Ok(dataset)
}

/// Where the course files are looked for: `datasets/train_signs.h5` + `datasets/test_signs.h5`
/// (the notebook's layout) when present, else the default dataset built by `scripts/setup.sh`.
pub fn default_dataset_paths(repo_root: &Path) -> Result<(PathBuf, PathBuf, &'static str)> {
    let datasets = repo_root.join("datasets");
    let signs = (datasets.join("train_signs.h5"), datasets.join("test_signs.h5"));
    if signs.0.exists() && signs.1.exists() {
        return Ok((signs.0, signs.1, "the course's SIGNS dataset (datasets/*_signs.h5)"));
    }
    let digits = (datasets.join("default/train_digits.h5"), datasets.join("default/test_digits.h5"));
    if digits.0.exists() && digits.1.exists() {
        return Ok((
            digits.0,
            digits.1,
            "the default dataset: handwritten digits 0-5 from scikit-learn's wheel, upsampled to 64x64x3 (scripts/make_default_dataset.py)",
        ));
    }
    bail!(
        "no dataset found: neither datasets/train_signs.h5 + datasets/test_signs.h5 nor the default \
         dataset under {}; run scripts/setup.sh",
        datasets.join("default").display()
    )
}
