//! Bad image input gets a clear, per-file error that names the file, and never a crash or a
//! giant allocation: empty, truncated, non-image, 0×0 and decompression-bomb files; in a batch,
//! the other files are still classified.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{keras_fixture, scratch_dir, shared_data};
use keras_tch::imaging::{load_img, DecodeOptions, Interpolation};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG whose header claims `width`×`height` RGB pixels, with a few bytes of (bogus) data.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let body = [kind, data].concat();
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let ihdr = [width.to_be_bytes().as_slice(), &height.to_be_bytes(), &[8, 2, 0, 0, 0]].concat();
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x01, 0x02, 0x03]);
    chunk(b"IEND", &[]);
    out
}

/// A GIF whose screen and only image are 0×0.
fn empty_gif() -> Vec<u8> {
    [b"GIF89a".as_slice(), &[0, 0, 0, 0, 0, 0, 0], &[0x2c, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[2, 2, 0x4c, 1, 0], &[0x3b]].concat()
}

/// The bad files, each with the words its error must contain.
fn bad_files(dir: &Path, good_jpeg: &Path) -> Vec<(PathBuf, &'static str)> {
    let jpeg = std::fs::read(good_jpeg).unwrap();
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.jpg", vec![], "the file is empty (0 bytes)"),
        ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec(), "corrupt or truncated JPEG"),
        ("notes.png", b"these are notes, not pixels\n".to_vec(), "not an image this port reads"),
        ("zero.gif", empty_gif(), "the image is 0×0 pixels (empty)"),
        ("zero.png", png_header_only(0, 0), "Invalid image dimensions"),
        ("bomb.png", png_header_only(100_000, 100_000), "100000×100000 = 10000000000 pixels, over the limit of 178956970"),
    ];
    let mut paths: Vec<(PathBuf, &str)> = files
        .into_iter()
        .map(|(name, bytes, expected)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            (path, expected)
        })
        .collect();
    paths.push((dir.join("missing.jpg"), "cannot read the file"));
    paths
}

#[test]
fn every_bad_image_is_a_clear_error_naming_the_file() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("bad-images");
    for (path, expected) in bad_files(&dir, &fixture.join("images/small_420.jpg")) {
        let error = load_img(&path, Some((224, 224)), Interpolation::Nearest, &DecodeOptions::default())
            .expect_err(&format!("{} must not load", path.display()));
        let message = format!("{error:#}");
        assert!(message.contains(&path.display().to_string()), "names the file: {message}");
        assert!(message.contains(expected), "{}: expected '{expected}' in: {message}", path.display());
    }
}

#[test]
fn the_pixel_limit_is_adjustable() {
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let options = DecodeOptions { max_pixels: 1_000_000, ..Default::default() };
    let message = format!("{:#}", load_img(&photo, None, Interpolation::Nearest, &options).unwrap_err());
    assert!(message.contains("3024×3024 = 9144576 pixels, over the limit of 1000000"), "{message}");
    // The library names no flag; the command line says which one lifts the limit.
    assert!(!message.contains("--"), "{message}");
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["classify", "--device", "cpu", "--max-pixels", "1000000", "--weights"])
        .arg(fixture.join("keras_top.h5"))
        .arg(&photo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("help: raise the limit with --max-pixels"), "{stderr}");
}

/// In a batch, each bad file is reported (on stderr, and as a JSON error line) and the good
/// files around it are still classified; the exit status says some failed.
#[test]
fn classify_reports_bad_files_and_classifies_the_rest() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let dir = scratch_dir("bad-images-batch");
    let good = fixture.join("images/small_420.jpg");
    let bad = bad_files(&dir, &good);
    let mut inputs = vec![good.clone()];
    inputs.extend(bad.iter().map(|(p, _)| p.clone()));
    inputs.push(fixture.join("images/photo.png"));
    let output = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["classify", "--json", "--batch-size", "3", "--weights"])
        .arg(fixture.join("keras_top.h5"))
        .args(&inputs)
        .output()
        .unwrap();
    assert!(!output.status.success(), "some files failed, so the status must say so");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{} of {} image(s) could not be classified", bad.len(), inputs.len())), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let order: Vec<&str> = lines.iter().map(|l| l["image"].as_str().unwrap()).collect();
    let given: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(order, given, "one line per input, in the order given");
    for (path, expected) in &bad {
        let line = lines.iter().find(|l| l["image"] == path.display().to_string()).expect("a line for each bad file");
        assert!(line["error"].as_str().unwrap().contains(expected), "{line}");
        assert!(stderr.contains(expected), "stderr reports {expected}");
    }
    for path in [&good, &fixture.join("images/photo.png")] {
        let line = lines.iter().find(|l| l["image"] == path.display().to_string()).unwrap();
        assert_eq!(line["predictions"].as_array().unwrap().len(), 5, "{line}");
    }
}
