//! Labelled images for training and transfer learning, from the two places users keep them:
//! - an image folder with one sub-folder per class, listed and split as Keras's
//!   `image_dataset_from_directory` does (the same files for the same seed), streamed from disk
//!   batch by batch; images are read with `load_img` (Pillow's decoding and resize filters, as
//!   `ImageDataGenerator.flow_from_directory` reads them — not `tf.image.resize`);
//! - a course-layout HDF5 file (`train_set_x` / `train_set_y` / `list_classes`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::course::load_any_split;
use super::dataset::{Dataset, SampleSource};
use crate::imaging::ImageReading;
use crate::io::input::check_regular_file;
use crate::rng::NumpyRandomState;

/// An image file and its class index.
pub type LabelledFile = (PathBuf, i64);

/// Images (N, H, W, 3) float32 0-255, integer labels (N) and the class names.
pub struct LabeledImages {
    pub x: Tensor,
    pub y: Tensor,
    pub classes: Vec<String>,
    /// What the images came from (paths, sizes, modification times), for cache keys.
    pub identity: String,
}

impl LabeledImages {
    pub fn len(&self) -> i64 {
        self.x.size()[0]
    }

    /// The labels one-hot, float32 N×classes (what categorical cross-entropy takes).
    pub fn one_hot_labels(&self) -> Tensor {
        super::one_hot(&self.y, self.classes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images of some classes only (relabelled 0.. in the order given), at most `per_class`
    /// of each (the first ones) — e.g. a small-data task carved out of a larger set.
    pub fn select_classes(&self, keep: &[i64], per_class: Option<usize>) -> LabeledImages {
        let labels: Vec<i64> = Vec::try_from(&self.y).expect("integer labels");
        let mut counts = vec![0usize; keep.len()];
        let (mut indices, mut new_labels) = (Vec::new(), Vec::new());
        for (i, label) in labels.iter().enumerate() {
            if let Some(k) = keep.iter().position(|c| c == label) {
                if per_class.is_none_or(|limit| counts[k] < limit) {
                    counts[k] += 1;
                    indices.push(i as i64);
                    new_labels.push(k as i64);
                }
            }
        }
        let classes = keep.iter().map(|&c| self.classes[c as usize].clone()).collect();
        LabeledImages {
            x: self.x.index_select(0, &Tensor::from_slice(&indices)),
            y: Tensor::from_slice(&new_labels),
            classes,
            identity: format!("{}\nclasses {keep:?} per class {per_class:?}", self.identity),
        }
    }
}

/// The files of a class-per-folder dataset, listed as Keras's `image_dataset_from_directory`
/// lists them (`index_directory`): class names are the sorted sub-folders (hidden ones
/// skipped); each class folder is walked recursively (symbolic links to folders not followed),
/// folders in sorted path order and files sorted within each, keeping the formats Keras reads.
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// (file, class index), classes in order.
    pub files: Vec<LabelledFile>,
}

/// The extensions `image_dataset_from_directory` reads (its `ALLOWLIST_FORMATS`, any case).
pub const DATASET_FORMATS: [&str; 5] = ["bmp", "gif", "jpeg", "jpg", "png"];

/// File extensions taken as images when walking folders (files named explicitly are always tried).
pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "jfif", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether a path has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    extension_in(path, &IMAGE_EXTENSIONS)
}

fn extension_in(path: &Path, extensions: &[&str]) -> bool {
    path.extension().is_some_and(|e| extensions.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
}

impl ImageFolder {
    pub fn scan(root: &Path) -> Result<Self> {
        let mut classes: Vec<String> = std::fs::read_dir(root)
            .with_context(|| format!("{}: cannot list the dataset folder", root.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        classes.sort();
        if classes.len() < 2 {
            bail!("{}: expected one sub-folder per class (at least two), found {}", root.display(), classes.len());
        }
        let mut files = Vec::new();
        let mut skipped = 0usize;
        for (index, class) in classes.iter().enumerate() {
            let images = image_files_under(&root.join(class), &DATASET_FORMATS, &mut skipped)?;
            if images.is_empty() {
                bail!("{}: class folder '{class}' holds no images ({})", root.display(), DATASET_FORMATS.join(", "));
            }
            files.extend(images.into_iter().map(|p| (p, index as i64)));
        }
        if skipped > 0 {
            eprintln!(
                "warning: {}: skipped {skipped} image file(s) in other formats: image_dataset_from_directory reads only {}",
                root.display(),
                DATASET_FORMATS.join(", ")
            );
        }
        Ok(Self { root: root.to_path_buf(), classes, files })
    }

    /// (training, validation) files as `image_dataset_from_directory(validation_split=fraction,
    /// seed=seed, shuffle=True)` chooses them: the list shuffled by numpy's
    /// `RandomState(seed).shuffle`, the last `int(fraction * n)` files for validation.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Vec<LabelledFile>, Vec<LabelledFile>)> {
        let seed = u32::try_from(seed).map_err(|_| anyhow::anyhow!("the split's seed must be below 2^32 (numpy's), got {seed}"))?;
        let mut files = self.files.clone();
        NumpyRandomState::new(seed).shuffle(&mut files);
        let count = ((files.len() as f64) * fraction.clamp(0.0, 1.0)) as usize;
        let validation = files.split_off(files.len() - count);
        Ok((files, validation))
    }
}

/// The image files under `dir` with one of `formats`' extensions, as Keras's `iter_valid_files`
/// yields them: `sorted(os.walk(dir))` (folders by path, links to folders not followed), each
/// folder's files sorted. Entries that are not regular files (a FIFO would block a read forever)
/// are skipped with a warning; `skipped` counts other image files ([`IMAGE_EXTENSIONS`]).
pub fn image_files_under(dir: &Path, formats: &[&str], skipped: &mut usize) -> Result<Vec<PathBuf>> {
    let mut folders = vec![dir.to_path_buf()];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("{}: cannot list the folder", folder.display()))? {
            let entry = entry.with_context(|| format!("{}: cannot list the folder", folder.display()))?;
            // os.walk(followlinks=False): a link to a folder is not walked.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                folders.push(entry.path());
                pending.push(entry.path());
            }
        }
    }
    folders.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    let mut files = Vec::new();
    for folder in folders {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("{}: cannot list the folder", folder.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        names.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
        for path in names {
            if !extension_in(&path, formats) {
                *skipped += usize::from(has_image_extension(&path));
                continue;
            }
            match check_regular_file(&path, "the image") {
                Ok(_) => files.push(path),
                Err(why) => eprintln!("warning: skipping {why:#}"),
            }
        }
    }
    Ok(files)
}

/// Images of a folder dataset, decoded when a batch is read (by the loader's workers).
pub struct FolderSource {
    files: Vec<LabelledFile>,
    reading: ImageReading,
}

impl FolderSource {
    pub fn new(files: Vec<LabelledFile>, reading: ImageReading) -> Self {
        Self { files, reading }
    }

    /// `files` of `folder` as a dataset: 0-255 pixels, integer labels.
    pub fn dataset(folder: &ImageFolder, files: Vec<LabelledFile>, reading: ImageReading) -> Dataset {
        Dataset::new(std::sync::Arc::new(Self::new(files, reading)), folder.classes.clone())
    }

    pub fn files(&self) -> &[LabelledFile] {
        &self.files
    }
}

impl SampleSource for FolderSource {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn input_shape(&self) -> Vec<i64> {
        let (height, width) = self.reading.image_size;
        vec![height as i64, width as i64, 3]
    }

    fn read(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let (height, width) = self.reading.image_size;
        let mut pixels = Vec::with_capacity(indices.len() * (height * width * 3) as usize);
        for &i in indices {
            let image = self.reading.read(&self.files[i].0)?;
            pixels.extend(image.as_raw().iter().map(|&v| f32::from(v)));
        }
        let x = Tensor::from_slice(&pixels).view([indices.len() as i64, height as i64, width as i64, 3]);
        Ok((x, self.labels(indices)?))
    }

    fn labels(&self, indices: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_slice(&indices.iter().map(|&i| self.files[i].1).collect::<Vec<_>>()))
    }

    fn identity(&self, indices: &[usize]) -> String {
        let reading = &self.reading;
        let mut identity = format!("folder {:?} {:?} crop {}", reading.image_size, reading.interpolation, reading.crop_to_aspect_ratio);
        for &i in indices {
            let (path, label) = &self.files[i];
            identity.push_str(&format!("\n{} {label} {}", path.display(), file_stamp(path)));
        }
        identity
    }

    fn sample_name(&self, index: usize) -> Option<String> {
        Some(self.files[index].0.display().to_string())
    }

    fn worth_prefetching(&self) -> bool {
        true
    }
}

/// `image_dataset_from_directory(root, validation_split=fraction, subset="both", seed=seed)`:
/// the training and validation datasets of a class-per-folder dataset (no validation when the
/// fraction holds no file), read as `reading` says, with integer labels.
pub fn folder_datasets(root: &Path, fraction: f64, seed: u64, reading: ImageReading) -> Result<(Dataset, Option<Dataset>)> {
    let folder = ImageFolder::scan(root)?;
    let (train, validation) = folder.split(fraction, seed)?;
    if train.is_empty() {
        bail!("{}: a validation split of {fraction} leaves no training images", root.display());
    }
    let validation = (!validation.is_empty()).then(|| FolderSource::dataset(&folder, validation, reading));
    Ok((FolderSource::dataset(&folder, train, reading), validation))
}

/// Every image of a class-per-folder dataset, in Keras's listing order (no shuffle).
pub fn folder_dataset(root: &Path, reading: ImageReading) -> Result<Dataset> {
    let folder = ImageFolder::scan(root)?;
    let files = folder.files.clone();
    Ok(FolderSource::dataset(&folder, files, reading))
}

/// A course-layout HDF5 file's split as `LabeledImages` (no resizing: the file's own size).
pub fn load_course_file(path: &Path, preferred_split: &str) -> Result<LabeledImages> {
    let (split, classes) = load_any_split(path, preferred_split)?;
    let y = Tensor::from_slice(split.y.as_slice().context("labels in standard layout")?).to_kind(Kind::Int64);
    let identity = format!("course {} {preferred_split} {}", path.display(), file_stamp(path));
    Ok(LabeledImages { x: split.pixel_values(), y, classes, identity })
}

/// Size and modification time, so an edited file changes cache keys.
pub(crate) fn file_stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            format!("{} {modified}", meta.len())
        }
        Err(_) => "missing".into(),
    }
}
