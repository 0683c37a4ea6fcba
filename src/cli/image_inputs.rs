//! The images a command reads: files and folders on the command line, loaded in batches the way
//! Keras's `load_img` → `img_to_array` → `preprocess_input` does, with per-file errors that do
//! not stop the other files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use tch::{Device, Tensor};

use keras_tch::data::folders::{has_image_extension, IMAGE_EXTENSIONS};
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode, DEFAULT_MAX_PIXELS};
use keras_tch::io::input::check_regular_file;
use keras_tch::train::progress::Progress;

#[derive(Args, Debug)]
pub struct ImageInputArgs {
    /// Image files, or folders to walk (recursively, in sorted order) for .jpg .png .bmp .gif .webp .tiff
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
                let before = files.len();
                walk(input, &mut files)?;
                if files.len() == before {
                    bail!("{}: no images in this folder (looked for {})", input.display(), IMAGE_EXTENSIONS.join(", "));
                }
            } else {
                files.push(input.clone());
            }
        }
        Ok(files)
    }

    pub fn input_size(&self) -> [i64; 2] {
        self.target_size.map(i64::from)
    }

    /// Go through `files` batch by batch with a progress bar on stderr: each batch is loaded,
    /// then handed to `each` with its file names and the bar (to `clear` before printing).
    pub fn for_each_batch(
        &self,
        files: &[PathBuf],
        device: Device,
        mut each: impl FnMut(&[PathBuf], Batch, &Progress) -> Result<()>,
    ) -> Result<()> {
        let batch_size = self.batch_size.max(1);
        let mut progress = Progress::on_stderr(files.len().div_ceil(batch_size));
        for (step, chunk) in files.chunks(batch_size).enumerate() {
            each(chunk, self.load_batch(chunk, device), &progress)?;
            progress.update(step + 1, &[]);
        }
        progress.finish(&[]);
        Ok(())
    }

    /// Load, convert and preprocess `paths` as one batch on `device`.
    pub fn load_batch(&self, paths: &[PathBuf], device: Device) -> Batch {
        let options = DecodeOptions { max_pixels: self.max_pixels, apply_exif_orientation: self.exif };
        let [h, w] = self.target_size;
        let mut arrays = Vec::new();
        let mut batch = Batch { loaded: Vec::new(), x: None, failed: Vec::new() };
        for path in paths {
            match load_img(path, Some((h, w)), self.interpolation, &options) {
                Ok(image) => {
                    arrays.push(img_to_array(&image));
                    batch.loaded.push(path.clone());
                }
                Err(error) => batch.failed.push((path.clone(), error)),
            }
        }
        if !arrays.is_empty() {
            batch.x = Some(preprocess_input(&Tensor::stack(&arrays, 0), self.preprocess).to_device(device));
        }
        batch
    }
}

/// Collect the images under `folder`, sorted. As `image_dataset_from_directory` does by default
/// (`follow_links=False`), symlinked folders are not entered (so a link loop cannot hang the
/// walk); an image-named entry that is not a regular file (a FIFO would block the read
/// forever, a device never end) is skipped with a warning.
fn walk(folder: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<(PathBuf, std::fs::FileType)> = std::fs::read_dir(folder)
        .map_err(|e| anyhow::anyhow!("{}: cannot list the folder: {e}", folder.display()))?
        .filter_map(|entry| entry.ok().and_then(|e| Some((e.path(), e.file_type().ok()?))))
        .filter(|(path, _)| !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in entries {
        if kind.is_dir() {
            walk(&path, files)?;
        } else if has_image_extension(&path) {
            match check_regular_file(&path, "the image") {
                Ok(_) => files.push(path),
                Err(why) => eprintln!("warning: skipping {why:#}"),
            }
        }
    }
    Ok(())
}
