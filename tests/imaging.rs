//! Keras's image input, pixel for pixel: `load_img` (Pillow's decoders, RGB conversion and
//! resize filters), `img_to_array` and `preprocess_input`, against what real Keras computed on
//! a real photo and its derivatives in every format (fixture imagenet_pipeline).

mod common;

use std::path::{Path, PathBuf};

use common::{keras_fixture, shared_data};
use keras_tch::imaging::{img_to_array, load_img, preprocess_input, DecodeOptions, Interpolation, PreprocessMode};

/// Where a fixture image lives: my_image.jpg in ../shared/data, the others in the fixture.
fn image_path(fixture: &Path, name: &str) -> Option<PathBuf> {
    if name == "my_image.jpg" {
        shared_data(name)
    } else {
        Some(fixture.join("images").join(name))
    }
}

fn keras_pixels(fixture: &Path, dataset: &str) -> (Vec<u8>, Vec<usize>) {
    let file = hdf5::File::open(fixture.join("load_img.h5")).unwrap();
    let ds = file.dataset(dataset).unwrap_or_else(|e| panic!("{dataset}: {e}"));
    (ds.read_raw::<u8>().unwrap(), ds.shape())
}

/// Keras ignores the EXIF orientation (checked above: exif_rotated.jpg loads as stored); with
/// `apply_exif_orientation` the image is turned upright first, as Pillow's `exif_transpose`.
#[test]
fn exif_orientation_is_applied_only_when_asked() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let path = fixture.join("images/exif_rotated.jpg");
    let options = DecodeOptions { apply_exif_orientation: true, ..Default::default() };
    let ours = load_img(&path, Some((224, 224)), Interpolation::Nearest, &options).unwrap();
    let (pillow, _) = keras_pixels(&fixture, "exif_rotated.jpg/exif_nearest");
    assert_eq!(ours.into_raw(), pillow);
    let stored = load_img(&path, None, Interpolation::Nearest, &DecodeOptions::default()).unwrap();
    let upright = load_img(&path, None, Interpolation::Nearest, &options).unwrap();
    assert_eq!((stored.width(), stored.height()), (500, 375));
    assert_eq!((upright.width(), upright.height()), (375, 500));
}

fn image_names(fixture: &Path) -> Vec<String> {
    let file = hdf5::File::open(fixture.join("load_img.h5")).unwrap();
    file.member_names().unwrap().into_iter().filter(|n| n != "preprocess").collect()
}

/// Our load_img against Keras's, pixel for pixel: every value must be equal.
fn assert_same_pixels(path: &Path, fixture: &Path, dataset: &str, size: Option<(u32, u32)>, interpolation: Interpolation) {
    let ours = load_img(path, size, interpolation, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let (keras, shape) = keras_pixels(fixture, dataset);
    assert_eq!(shape, vec![ours.height() as usize, ours.width() as usize, 3], "{dataset}: shape");
    let ours = ours.into_raw();
    let differing = ours.iter().zip(&keras).filter(|(a, b)| a != b).count();
    let largest = ours.iter().zip(&keras).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
    assert_eq!(largest, 0, "{dataset}: {differing} values differ, by up to {largest}");
}

/// JPEG (baseline 4:2:0, progressive 4:4:4, grey, Adobe CMYK), PNG (RGB, RGBA, grey, 16-bit
/// grey, palette), BMP, GIF, TIFF, WebP (lossless and lossy), upscaled and downscaled, in
/// every interpolation Keras offers, a non-square target, and decoded at full size.
#[test]
fn load_img_matches_keras_for_every_format_and_filter() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    for name in image_names(&fixture) {
        let Some(path) = image_path(&fixture, &name) else { return };
        for interpolation in Interpolation::ALL {
            let dataset = format!("{name}/{}", interpolation.name());
            assert_same_pixels(&path, &fixture, &dataset, Some((224, 224)), interpolation);
        }
        assert_same_pixels(&path, &fixture, &format!("{name}/bilinear_200x300"), Some((200, 300)), Interpolation::Bilinear);
        if name != "my_image.jpg" {
            assert_same_pixels(&path, &fixture, &format!("{name}/full"), None, Interpolation::Nearest);
        }
    }
}

#[test]
fn preprocess_input_matches_keras_in_every_mode() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let image = load_img(&photo, Some((224, 224)), Interpolation::Nearest, &DecodeOptions::default()).unwrap();
    let x = img_to_array(&image).unsqueeze(0);
    for mode in [PreprocessMode::Caffe, PreprocessMode::Tf, PreprocessMode::Torch] {
        let (keras, shape) = common::read_f32(&fixture.join("load_img.h5"), &format!("preprocess/{}", mode.name()));
        assert_eq!(shape, vec![1, 224, 224, 3]);
        let ours: Vec<f32> = Vec::try_from(preprocess_input(&x, mode).flatten(0, -1)).unwrap();
        let diff = common::max_abs_diff(&ours, &keras);
        assert!(diff <= 1e-5 * 255.0, "{}: max abs difference {diff}", mode.name());
    }
}
