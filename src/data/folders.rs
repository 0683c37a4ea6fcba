//! Labelled images for transfer learning, from the two places users keep them:
//! - an image folder with one sub-folder per class, as Keras's `image_dataset_from_directory`
//!   reads it: class names sorted, files sorted within a class, `validation_split` taking a
//!   seeded random fraction (the shuffle is this port's own, so the chosen files differ from
//!   TensorFlow's for the same seed); images are read with `load_img` (Pillow's semantics, as
//!   `ImageDataGenerator.flow_from_directory` reads them);
//! - a course-layout HDF5 file (`train_set_x` / `train_set_y` / `list_classes`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::course::load_any_split;
use crate::imaging::{img_to_array, load_img, DecodeOptions, Interpolation};
use crate::io::input::check_regular_file;
use crate::rng::SplitMix64;

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
        self.y.one_hot(self.classes.len() as i64).to_kind(tch::Kind::Float)
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

/// The files of a class-per-folder dataset.
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// (file, class index), classes in order, files sorted within each class.
    pub files: Vec<(PathBuf, i64)>,
}

/// File extensions taken as images when walking folders (files named explicitly are always tried).
pub const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "jfif", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether a path has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
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
        for (index, class) in classes.iter().enumerate() {
            let mut images: Vec<PathBuf> = std::fs::read_dir(root.join(class))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| has_image_extension(p))
                // A FIFO would block the read forever and a device never end: skip, and say so.
                .filter(|p| match check_regular_file(p, "the image") {
                    Ok(_) => true,
                    Err(why) => {
                        eprintln!("warning: skipping {why:#}");
                        false
                    }
                })
                .collect();
            if images.is_empty() {
                bail!("{}: class folder '{class}' holds no images ({})", root.display(), IMAGE_EXTENSIONS.join(", "));
            }
            images.sort();
            files.extend(images.into_iter().map(|p| (p, index as i64)));
        }
        Ok(Self { root: root.to_path_buf(), classes, files })
    }

    /// (training, validation) files: a seeded shuffle, the last `fraction` for validation.
    pub fn split(&self, fraction: f64, seed: u64) -> (Vec<LabelledFile>, Vec<LabelledFile>) {
        let mut files = self.files.clone();
        SplitMix64::new(seed).shuffle(&mut files);
        let count = ((files.len() as f64) * fraction.clamp(0.0, 1.0)) as usize;
        let validation = files.split_off(files.len() - count);
        (files, validation)
    }

    /// Load `files` at `size` (H, W); any unreadable image is an error naming it.
    pub fn load(&self, files: &[(PathBuf, i64)], size: (u32, u32), interpolation: Interpolation) -> Result<LabeledImages> {
        let options = DecodeOptions::default();
        let arrays = files
            .iter()
            .map(|(path, _)| Ok(img_to_array(&load_img(path, Some(size), interpolation, &options)?)))
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<i64> = files.iter().map(|(_, label)| *label).collect();
        let mut identity = format!("folder {} {size:?} {interpolation:?}", self.root.display());
        for (path, label) in files {
            identity.push_str(&format!("\n{} {label} {}", path.display(), file_stamp(path)));
        }
        Ok(LabeledImages { x: Tensor::stack(&arrays, 0), y: Tensor::from_slice(&labels), classes: self.classes.clone(), identity })
    }
}

/// A course-layout HDF5 file's split as `LabeledImages` (no resizing: the file's own size).
pub fn load_course_file(path: &Path, preferred_split: &str) -> Result<LabeledImages> {
    let (split, classes) = load_any_split(path, preferred_split)?;
    let y = Tensor::from_slice(split.y.as_slice().context("labels in standard layout")?).to_kind(Kind::Int64);
    let identity = format!("course {} {preferred_split} {}", path.display(), file_stamp(path));
    Ok(LabeledImages { x: split.pixel_values(), y, classes, identity })
}

/// Size and modification time, so an edited file changes cache keys.
fn file_stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            format!("{} {modified}", meta.len())
        }
        Err(_) => "missing".into(),
    }
}
