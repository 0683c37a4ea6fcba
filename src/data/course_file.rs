//! A course-layout HDF5 split (`{train,test}_set_x` uint8 N×H×W×C, `{train,test}_set_y`,
//! `list_classes`) read batch by batch: opening it checks the layout and reads the labels and
//! class names; each batch's images are then read as hyperslabs of `*_set_x` — one per run of
//! consecutive samples — so memory holds a batch, never the file. Every read runs in a reading
//! process, as all of keras-tch's HDF5 reading does: one kept for the source's lifetime
//! ([`crate::io::reading_process`]), so a batch costs a request, not a fork.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use ndarray::{s, Ix4};
use tch::{Kind, Tensor};

use super::course::{open_split_in, split_to_read};
use super::dataset::{Dataset, SampleSource};
use crate::io::isolated::Bulk;
use crate::io::reading_process::ReadingProcess;
use crate::io::saved_weights::H5Source;

/// The reading process of a split's images: runs of samples (first, count) in, their pixels out.
type PixelReader = ReadingProcess<Vec<(usize, usize)>, Bulk<u8>>;

/// What opening a split reads: the images' dataset name and shape, the labels, the class names.
type SplitListing = ((String, Vec<usize>), (Bulk<i64>, Vec<String>));

/// One split of a course file, its images still in the file.
pub struct CourseFileSource {
    file: H5Source,
    /// Started at the first batch; answers runs of samples (first, count) with their pixels.
    reader: Mutex<Option<PixelReader>>,
    path: PathBuf,
    /// The images' dataset (`train_set_x` or `test_set_x`).
    images: String,
    /// N, H, W, C.
    shape: [usize; 4],
    labels: Vec<i64>,
    identity: String,
}

impl CourseFileSource {
    /// The split `preferred` (`"train"` or `"test"`) of the course file at `path`, or the other
    /// one when the file holds only that; with the class names.
    pub fn open(path: &Path, preferred: &str) -> Result<(Self, Vec<String>)> {
        let file = H5Source::file(path).with_context(|| format!("cannot open {} as an HDF5 file", path.display()))?;
        let file_size = file.size();
        let ((images, shape), (Bulk(labels), classes)): SplitListing = file.read(|h5| {
            let prefix = split_to_read(h5, preferred);
            let split = open_split_in(h5, path, file_size, prefix)?;
            Ok(((format!("{prefix}_set_x"), split.images.shape()), (Bulk(split.labels), split.classes)))
        })?;
        let shape = <[usize; 4]>::try_from(shape.as_slice()).with_context(|| format!("{}: '{images}' is not rank 4", path.display()))?;
        let identity = format!("course {} {images} {}", path.display(), super::folders::file_stamp(path));
        Ok((Self { file, reader: Mutex::new(None), path: path.to_path_buf(), images, shape, labels, identity }, classes))
    }

    fn image_bytes(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }
}

/// The split of a course file that [`CourseFileSource::open`] picks, as a dataset: images read
/// from the file one batch at a time (as 0-255 float32, the file's own size), integer labels.
pub fn course_dataset(path: &Path, preferred: &str) -> Result<Dataset> {
    let (source, classes) = CourseFileSource::open(path, preferred)?;
    Ok(Dataset::new(Arc::new(source), classes))
}

/// `indices` as runs of consecutive samples, in order: (first, count).
fn consecutive_runs(indices: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &index in indices {
        match runs.last_mut() {
            Some((start, count)) if *start + *count == index => *count += 1,
            _ => runs.push((index, 1)),
        }
    }
    runs
}

impl SampleSource for CourseFileSource {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn input_shape(&self) -> Vec<i64> {
        self.shape[1..].iter().map(|&d| d as i64).collect()
    }

    fn read(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            bail!("{}: sample {bad} asked of '{}', which holds {}", self.path.display(), self.images, self.len());
        }
        let runs = consecutive_runs(indices);
        let expected = indices.len() * self.image_bytes();
        let mut reader = self.reader.lock().map_err(|_| anyhow::anyhow!("{}: a reading thread panicked", self.path.display()))?;
        if reader.is_none() {
            let images = self.images.clone();
            *reader = Some(self.file.reading_process(move |h5, runs: Vec<(usize, usize)>| {
                let dataset = h5.dataset(&images)?;
                let mut pixels: Vec<u8> = Vec::new();
                for (start, count) in runs {
                    let block = dataset.read_slice::<u8, _, Ix4>(s![start..start + count, .., .., ..])?;
                    pixels.extend(block.iter());
                }
                Ok(Bulk(pixels))
            })?);
        }
        let Bulk(pixels) = reader.as_mut().expect("started above").ask(&runs)?;
        drop(reader);
        if pixels.len() != expected {
            bail!(
                "{}: '{}' gave {} bytes for {} images, expected {expected}",
                self.path.display(),
                self.images,
                pixels.len(),
                indices.len()
            );
        }
        let [_, h, w, c] = self.shape.map(|d| d as i64);
        let x = Tensor::from_slice(&pixels).view([indices.len() as i64, h, w, c]).to_kind(Kind::Float);
        Ok((x, self.labels(indices)?))
    }

    fn labels(&self, indices: &[usize]) -> Result<Tensor> {
        let labels: Vec<i64> =
            indices.iter().map(|&i| self.labels.get(i).copied().context("sample index past the split's end")).collect::<Result<_>>()?;
        Ok(Tensor::from_slice(&labels))
    }

    fn identity(&self, indices: &[usize]) -> String {
        if indices.len() == self.len() && indices.iter().enumerate().all(|(i, &j)| i == j) {
            self.identity.clone()
        } else {
            format!("{} samples {indices:?}", self.identity)
        }
    }

    /// Each batch is a reading process and a file read: worth overlapping with training.
    fn worth_prefetching(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::consecutive_runs;

    #[test]
    fn runs_of_consecutive_samples() {
        assert_eq!(consecutive_runs(&[3, 4, 5, 9, 1, 2]), [(3, 3), (9, 1), (1, 2)]);
        assert_eq!(consecutive_runs(&[]), []);
    }
}
