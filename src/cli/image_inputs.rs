//! The images a command reads: files and folders on the command line (folders walked as Keras
//! walks a dataset's), loaded in batches by the library's one image reader (`load_img` →
//! `img_to_array`), then `preprocess_input`, with per-file errors that do not stop the other files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use tch::{Device, Tensor};

use keras_tch::data::folders::{image_files_under, IMAGE_EXTENSIONS};
use keras_tch::imaging::{preprocess_input, DecodeOptions, ImageReading, Interpolation, PreprocessMode, DEFAULT_MAX_PIXELS};
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::progress::Progress;

#[derive(Args, Debug)]
pub struct ImageInputArgs {
    /// Image files, or folders to walk (recursively, in Keras's sorted os.walk order; hidden
    /// entries skipped) for .jpg .png .bmp .gif .webp .tiff
    #[arg(required = true, value_name = "IMAGE|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Resize filter of load_img (Keras's default: nearest)
    #[arg(long, value_enum, default_value = "nearest")]
    pub interpolation: Interpolation,
    /// preprocess_input mode (ResNet50's: caffe = RGB→BGR minus the ImageNet mean)
    #[arg(long, value_enum, default_value = "caffe")]
    pub preprocess: PreprocessMode,
    /// load_img's target_size as H,W
    #[arg(long, value_parser = parse_size, default_value = "224,224", value_name = "H,W")]
    pub target_size: [u32; 2],
    /// Rotate/flip by the EXIF orientation tag (Keras does not, so neither does the default)
    #[arg(long)]
    pub exif: bool,
    /// Refuse images with more pixels than this (Pillow's decompression-bomb limit)
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Images per forward pass
    #[arg(long, default_value_t = 32, value_parser = super::value_parsers::at_least_one_usize)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: super::device_arg::DeviceArg,
}

pub fn parse_size(text: &str) -> Result<[u32; 2], String> {
    match text.split(',').map(|d| d.trim().parse::<u32>()).collect::<Result<Vec<_>, _>>().as_deref() {
        Ok(&[h, w]) if h > 0 && w > 0 => Ok([h, w]),
        _ => Err(format!("expected H,W with two positive numbers, e.g. 224,224; got '{text}'")),
    }
}

/// One batch: the images that loaded (in order) as a preprocessed (N, H, W, 3) tensor, and the
/// files that did not, with why.
pub struct Batch {
    pub loaded: Vec<PathBuf>,
    pub x: Option<Tensor>,
    pub failed: Vec<(PathBuf, anyhow::Error)>,
}

impl ImageInputArgs {
    /// The files to read, in order. A folder without images is an error before anything runs;
    /// missing or unreadable files are reported one by one as they are loaded.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for input in &self.inputs {
            if input.is_dir() {
                // Hidden files (macOS's `._photo.jpg` companions) and folders are not photos.
                let hidden = |path: &PathBuf| {
                    path.strip_prefix(input)
                        .is_ok_and(|relative| relative.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')))
                };
                let images: Vec<PathBuf> =
                    image_files_under(input, &IMAGE_EXTENSIONS, &mut 0)?.into_iter().filter(|p| !hidden(p)).collect();
                if images.is_empty() {
                    bail!("{}: no images in this folder (looked for {})", input.display(), IMAGE_EXTENSIONS.join(", "));
                }
                files.extend(images);
            } else {
                files.push(input.clone());
            }
        }
        Ok(files)
    }

    pub fn input_size(&self) -> [i64; 2] {
        self.target_size.map(i64::from)
    }

    /// Run `predict` on every file, batch by batch with a progress bar on stderr, and hand each
    /// file's outcome — its output row, or why it did not load — to `each` in the order the
    /// files were given (with the bar, to `clear` before printing). As one rank of a
    /// data-parallel job (`parallel`), each batch of `--batch-size` × ranks files is shared out,
    /// every rank loading and running its slice, and the rows (each of `row_shape`) are gathered:
    /// `each` then runs on rank 0 only, which reads a file another rank could not load again
    /// for its error.
    pub fn for_each_output(
        &self,
        files: &[PathBuf],
        device: Device,
        parallel: Option<&DataParallel>,
        row_shape: &[i64],
        predict: impl Fn(&Tensor) -> Result<Tensor>,
        mut each: impl FnMut(&Path, Result<Tensor>, &Progress) -> Result<()>,
    ) -> Result<()> {
        let chief = parallel.is_none_or(DataParallel::is_chief);
        let step_files = self.batch_size.max(1) * parallel.map_or(1, DataParallel::world_size);
        let mut progress = Progress::on_stderr(files.len().div_ceil(step_files));
        for (step, chunk) in files.chunks(step_files).enumerate() {
            let mine = parallel.map_or(0..chunk.len(), |parallel| parallel.slice(chunk.len()));
            let batch = self.load_batch(&chunk[mine.clone()], device);
            let rows = batch.x.as_ref().map(&predict).transpose()?.map(|y| y.to_device(Device::Cpu));
            // This rank's files in order, each with its row or its error.
            let (mut loaded, mut failed) = (batch.loaded.iter().peekable(), batch.failed.into_iter().peekable());
            let mut outcomes = Vec::with_capacity(mine.len());
            for path in &chunk[mine] {
                if loaded.next_if(|p| *p == path).is_some() {
                    outcomes.push(Ok(()));
                } else if let Some((_, error)) = failed.next_if(|(p, _)| p == path) {
                    outcomes.push(Err(error));
                }
            }
            match parallel {
                None => {
                    let mut row = 0;
                    for (path, outcome) in chunk.iter().zip(outcomes) {
                        let outcome = outcome.map(|()| rows.as_ref().expect("rows for loaded files").get(row));
                        row += i64::from(outcome.is_ok());
                        each(path, outcome, &progress)?;
                    }
                }
                Some(parallel) => {
                    let present: Vec<bool> = outcomes.iter().map(Result::is_ok).collect();
                    let (all, present) = parallel.gather_rows(chunk.len(), row_shape, rows.as_ref(), &present)?;
                    if chief {
                        for (index, path) in chunk.iter().enumerate() {
                            let outcome = if present[index] { Ok(all.get(index as i64)) } else { Err(self.load_error(path, device)) };
                            each(path, outcome, &progress)?;
                        }
                    }
                }
            }
            if chief {
                progress.update(step + 1, &[]);
            }
        }
        if chief {
            progress.finish(&[]);
        }
        Ok(())
    }

    /// Why `path` does not load (read again: another rank found it would not).
    fn load_error(&self, path: &Path, device: Device) -> anyhow::Error {
        match self.load_batch(&[path.to_path_buf()], device).failed.pop() {
            Some((_, error)) => error,
            None => anyhow::anyhow!("{}: another process could not load it, but this one can (was it replaced meanwhile?)", path.display()),
        }
    }

    /// Load and preprocess `paths` as one batch on `device`.
    pub fn load_batch(&self, paths: &[PathBuf], device: Device) -> Batch {
        let [h, w] = self.target_size;
        let decode = DecodeOptions { max_pixels: self.max_pixels, apply_exif_orientation: self.exif };
        let read = ImageReading::new((h, w), self.interpolation).with_decode(decode).read_batch(paths);
        let x = read.pixels.map(|pixels| preprocess_input(&pixels, self.preprocess).to_device(device));
        Batch { loaded: read.loaded, x, failed: read.failed }
    }
}
