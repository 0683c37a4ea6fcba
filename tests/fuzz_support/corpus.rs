//! The seed corpus: real Keras files from the fixtures (`scripts/setup.sh --fixtures`), the
//! course photo and the ImageNet pipeline's images in every format, plus files keras-tch's own
//! writers produce (its `.h5`, `.keras`, `.npy`, safetensors and checkpoints are inputs too).
//!
//! Seeds needing fixtures return `None` when they are missing (after `common`'s rule: a panic
//! under CI=true, a note otherwise).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use keras_tch::graph::Model;
use keras_tch::train::checkpoint::{self, TrainingState};
use keras_tch::train::history::History;
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use super::bytes::{hot_spots, Seed};
use crate::common::{keras_fixture, shared_data};

/// Seeds larger than this make each execution slow (the ResNet50 files are ~100 MB).
const MAX_SEED_BYTES: u64 = 5 << 20;

/// Where HDF5 keeps what decides a read: attribute names (their values follow), B-tree, heap
/// and object-header signatures, the global heap holding variable-length strings, and the
/// start of Keras's JSON.
#[rustfmt::skip]
const HDF5_MARKERS: &[&[u8]] = &[
    b"layer_names", b"weight_names", b"model_config", b"training_config", b"keras_version", b"backend",
    b"TREE", b"HEAP", b"SNOD", b"GCOL", b"OHDR",
    b"{\"class_name\"",
];
/// Local file headers, central directory entries, end of central directory.
const ZIP_MARKERS: &[&[u8]] = &[b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"];
#[rustfmt::skip]
const IMAGE_MARKERS: &[&[u8]] = &[
    b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"iCCP", b"eXIf", // PNG chunks
    b"\xff\xc0", b"\xff\xc2", b"\xff\xc4", b"\xff\xdb", b"\xff\xda", b"\xff\xe1", // JPEG: SOF0, SOF2, DHT, DQT, SOS, APP1
    b"VP8 ", b"VP8L", b"VP8X", // WebP chunks
    b"NETSCAPE", b"\x21\xf9\x04", b"\x2c\x00\x00", // GIF: loop, graphic control, image descriptor
];

/// Keras HDF5 files (full models and weights only) of the fixtures, with their HDF5
/// metadata as hot ranges. Only files the library reads are seeds: many fixture `.h5` files
/// hold test data in layouts of their own, which would only test the first check.
pub fn keras_h5() -> Option<Vec<Seed>> {
    let files = fixture_files("h5")?.into_iter().filter(|f| keras_tch::io::read_weights(f).is_ok());
    let mut seeds: Vec<Seed> = files.map(|f| hdf5_hot(read_seed(&f))).collect();
    seeds.extend(own_writer_files(&[("model.h5", keras_tch::io::save_model_h5), ("weights.h5", keras_tch::io::save_weights_h5)]));
    Some(seeds)
}

/// The full-model HDF5 files among [`keras_h5`] (those with a `model_config`).
pub fn keras_h5_models() -> Option<Vec<Seed>> {
    let describes = |seed: &Seed| keras_tch::io::load_model::describes_architecture(Path::new(&seed.name)).unwrap_or(false);
    Some(keras_h5()?.into_iter().filter(describes).collect())
}

/// Keras 3 `.keras` archives of the fixtures, and one keras-tch wrote.
pub fn keras_archives() -> Option<Vec<Seed>> {
    let mut seeds: Vec<Seed> = fixture_files("keras")?.iter().map(|f| read_seed(f)).collect();
    seeds.extend(own_writer_files(&[("model.keras", keras_tch::io::save_model_keras)]));
    Some(seeds.into_iter().map(zip_hot).collect())
}

/// The zip records of an archive as hot ranges (its members are checked by CRC, so edits
/// inside them mostly test the CRC check).
pub fn zip_hot(seed: Seed) -> Seed {
    let hot = hot_spots(&seed.bytes, 64, ZIP_MARKERS, 64);
    seed.with_hot(hot)
}

/// An HDF5 file's superblock and root object header (its first 4 KB) and its metadata as
/// hot ranges.
pub fn hdf5_hot(seed: Seed) -> Seed {
    let hot = hot_spots(&seed.bytes, 4096, HDF5_MARKERS, 512);
    seed.with_hot(hot)
}

/// The course photo and the ImageNet fixture's images (JPEG, PNG, GIF, BMP, WebP, TIFF).
pub fn images() -> Option<Vec<Seed>> {
    let folder = keras_fixture("imagenet_pipeline")?.join("images");
    let mut files = files_under(&folder);
    files.extend(shared_data("my_image.jpg"));
    files.sort();
    Some(files.iter().map(|f| image_hot(read_seed(f))).collect())
}

fn image_hot(seed: Seed) -> Seed {
    let hot = hot_spots(&seed.bytes, 1024, IMAGE_MARKERS, 64);
    seed.with_hot(hot)
}

/// `.npy` files from the library's writer (float32, version 1.0) and hand-made variants it
/// also reads (version 2.0 headers, float64).
pub fn npy() -> Vec<Seed> {
    let scratch = scratch("npy-seeds");
    let tensors = [
        Tensor::from_slice(&[1.5f32, -2.0, 3.25, 0.0, 1e-3, 7.0]).reshape([2, 3]),
        Tensor::from_slice(&[42.0f32]).reshape([] as [i64; 0]),
        Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        Tensor::arange(48, (Kind::Float, Device::Cpu)).reshape([1, 4, 4, 3]),
    ];
    let mut seeds: Vec<Seed> = tensors
        .iter()
        .enumerate()
        .map(|(i, tensor)| {
            let path = scratch.join(format!("seed-{i}.npy"));
            keras_tch::io::npy::write_npy(&path, tensor).expect("write_npy");
            npy_hot(read_seed(&path))
        })
        .collect();
    seeds.push(npy_hot(Seed::new("v2-f64.npy", npy_bytes(2, "<f8", "(2, 2)", &[1.0f64, 2.0, 3.0, 4.0].map(f64::to_le_bytes).concat()))));
    seeds.push(npy_hot(Seed::new("v1-f64.npy", npy_bytes(1, "<f8", "(3,)", &[0.5f64, -0.5, 9.0].map(f64::to_le_bytes).concat()))));
    seeds
}

fn npy_hot(seed: Seed) -> Seed {
    let header = seed.bytes.iter().position(|&b| b == b'\n').map_or(128, |end| end + 1);
    seed.with_hot(vec![0..header])
}

/// A `.npy` file of `data` with the given header fields.
fn npy_bytes(version: u8, descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    npy_file(version, &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n"), data)
}

/// A `.npy` file from its parts (the header's length field sized for the version).
pub fn npy_file(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    if version == 1 {
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// A checkpoint folder that keras-tch's trainer wrote (the model's weights with Adam's slots,
/// two epochs of history); built once per process.
pub fn checkpoint_folder() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = scratch("checkpoint");
        let model = checkpoint_model();
        let mut optimizer = Optimizer::new(OptimizerConfig::adam(1e-3));
        let variables = model.trainable_variables();
        let grads: Vec<Tensor> = variables.iter().map(|(_, v)| v.ones_like() * 0.01).collect();
        optimizer.apply(&variables, &grads).expect("one Adam step");
        let mut history = History::default();
        history.push(&[("loss", 0.69), ("accuracy", 0.5)]);
        history.push(&[("loss", 0.41), ("accuracy", 0.75)]);
        let state = TrainingState { epoch: 2, next_batch: 3, loss_sum: 1.25, correct: 12.0, seen: 96, history, stop_training: false };
        checkpoint::save(&folder, &model, &optimizer, &state, &Default::default()).expect("checkpoint::save");
        folder
    })
}

/// The model checkpoints are made for and restored onto: HappyModel on 16×16 inputs (small,
/// but with every kind of weight: convolution, BatchNorm statistics, dense). Always the same
/// initial weights, so the seed files it writes, and hence a seed's inputs, are the same on
/// every run.
pub fn checkpoint_model() -> Model {
    tch::manual_seed(14);
    keras_tch::models::happy::happy_model([16, 16, 3], Device::Cpu).expect("HappyModel")
}

/// The `checkpoint.json` of [`checkpoint_folder`].
pub fn checkpoint_records() -> Vec<String> {
    vec![std::fs::read_to_string(checkpoint_folder().join("checkpoint.json")).expect("checkpoint.json")]
}

/// Safetensors files: the checkpoint's (weights and optimizer slots) and a plain model export.
pub fn safetensors() -> Vec<Seed> {
    let folder = checkpoint_folder();
    let mut seeds: Vec<Seed> =
        files_under(folder).iter().filter(|f| f.extension().is_some_and(|e| e == "safetensors")).map(|f| read_seed(f)).collect();
    let export = scratch("safetensors-seeds").join("model.safetensors");
    keras_tch::io::safetensors::save_safetensors(&checkpoint_model(), &export).expect("save_safetensors");
    seeds.push(read_seed(&export));
    seeds
        .into_iter()
        .map(|seed| {
            let header_end = seed.bytes.get(..8).map_or(0, |len| 8 + u64::from_le_bytes(len.try_into().unwrap()) as usize);
            seed.with_hot(vec![0..header_end])
        })
        .collect()
}

/// Files of the fixtures with this extension, at most [`MAX_SEED_BYTES`] each, in a stable order.
fn fixture_files(extension: &str) -> Option<Vec<PathBuf>> {
    let root = keras_fixture("h5_happy")?.parent().expect("the fixtures folder").to_path_buf();
    let mut files: Vec<PathBuf> = files_under(&root)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == extension))
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() <= MAX_SEED_BYTES))
        .collect();
    files.sort();
    Some(files)
}

/// Every file under `folder`, recursively (symbolic links followed).
fn files_under(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            files.extend(files_under(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

/// One of keras-tch's model writers (`save_model_h5`, …).
type Writer = fn(&Model, &Path) -> anyhow::Result<()>;

/// Files a keras-tch writer makes from the HappyModel, so the fuzzer also starts from this
/// project's own layout (variable-length strings, its attribute order).
fn own_writer_files(writers: &[(&str, Writer)]) -> Vec<Seed> {
    let folder = scratch("writer-seeds");
    let model = checkpoint_model();
    writers
        .iter()
        .map(|(name, write)| {
            let path = folder.join(format!("keras-tch-{name}"));
            write(&model, &path).unwrap_or_else(|e| panic!("writing {name}: {e:#}"));
            if name.ends_with(".h5") {
                hdf5_hot(read_seed(&path))
            } else {
                read_seed(&path)
            }
        })
        .collect()
}

fn read_seed(path: &Path) -> Seed {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading seed {}: {e}", path.display()));
    Seed::new(path.display().to_string(), bytes)
}

/// A fresh folder under the fuzzer's output folder.
pub fn scratch(name: &str) -> PathBuf {
    let folder = super::output_root().join("scratch").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("creating {}: {e}", folder.display()));
    folder
}
