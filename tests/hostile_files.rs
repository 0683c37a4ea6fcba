//! Hostile and broken files, read through the library: each must give a clear error naming the
//! file, the layer or dataset and what was expected — never a panic, an abort, a giant
//! allocation or a silent wrong number. Each test is one defect class of issue 14.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use common::{keras_fixture, scratch_dir};
use hdf5::types::VarLenUnicode;
use keras_tch::io::load_model::{load_model, read_weights};
use keras_tch::io::npy::read_npy;
use tch::Device;

fn write_str_attr(location: &hdf5::Location, name: &str, value: &str) {
    let value = VarLenUnicode::from_str(value).unwrap();
    location.new_attr::<VarLenUnicode>().shape(()).create(name).unwrap().write_scalar(&value).unwrap();
}

fn write_str_list_attr(location: &hdf5::Location, name: &str, values: &[&str]) {
    let values: Vec<VarLenUnicode> = values.iter().map(|v| VarLenUnicode::from_str(v).unwrap()).collect();
    location.new_attr::<VarLenUnicode>().shape([values.len()]).create(name).unwrap().write_raw(&values).unwrap();
}

/// A weights-only file (`save_weights` layout) with one Dense layer `dense` whose kernel
/// dataset is declared with `kernel_shape` but never written (HDF5 allocates nothing for it).
fn weights_file_declaring(path: &Path, kernel_shape: &[usize]) {
    let file = hdf5::File::create(path).unwrap();
    write_str_attr(&file, "keras_version", "2.21.0");
    write_str_list_attr(&file, "layer_names", &["dense"]);
    let group = file.create_group("dense").unwrap();
    write_str_list_attr(&group, "weight_names", &["dense/kernel:0"]);
    group.new_dataset::<f32>().shape(kernel_shape).create("dense/kernel:0").unwrap();
}

/// A full-model file holding only `model_config` (enough for `load_model` to rebuild it).
fn model_config_file(path: &Path, config: &str) {
    let file = hdf5::File::create(path).unwrap();
    write_str_attr(&file, "keras_version", "2.21.0");
    write_str_attr(&file, "model_config", config);
}

fn functional(layers: &str) -> String {
    format!(
        r#"{{"class_name": "Functional", "config": {{"name": "m", "layers": [{layers}],
            "input_layers": [["input", 0, 0]], "output_layers": [["out", 0, 0]]}}}}"#
    )
}

const INPUT_8X8X3: &str = r#"{"class_name": "InputLayer", "name": "input", "config": {"name": "input", "batch_input_shape": [null, 8, 8, 3]}, "inbound_nodes": []}"#;

fn error_of<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_small_file_declaring_a_huge_dataset_is_refused_before_any_allocation() {
    let dir = scratch_dir("huge-declared");
    let path = dir.join("huge.weights.h5");
    // 100,000 × 107,500 float32 = 43 GB declared in a file of a few KB.
    weights_file_declaring(&path, &[100_000, 107_500]);
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    let message = error_of(read_weights(&path));
    assert!(message.contains("huge.weights.h5"), "{message}");
    assert!(message.contains("dense/kernel:0") && message.contains("[100000, 107500]"), "{message}");
    assert!(message.contains("truncated or corrupt"), "{message}");
}

#[test]
fn duplicated_layer_names_are_refused() {
    let dir = scratch_dir("duplicate-layers");
    let path = dir.join("dup.weights.h5");
    let file = hdf5::File::create(&path).unwrap();
    write_str_attr(&file, "keras_version", "2.21.0");
    write_str_list_attr(&file, "layer_names", &["dense", "dense"]);
    let group = file.create_group("dense").unwrap();
    write_str_list_attr(&group, "weight_names", &["dense/kernel:0"]);
    group.new_dataset::<f32>().shape([2, 2]).create("dense/kernel:0").unwrap().write_raw(&[0f32; 4]).unwrap();
    drop(file);
    let message = error_of(read_weights(&path));
    assert!(message.contains("'dense' more than once"), "{message}");
}

#[test]
fn absurd_sizes_in_model_config_are_refused_naming_the_layer() {
    let dir = scratch_dir("absurd-config");
    let cases = [
        (
            "filters",
            r#"{"class_name": "Conv2D", "name": "out", "config": {"name": "out", "filters": 1000000000000, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same"}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#,
            "'filters' must be between 1 and 1048576",
        ),
        (
            "units",
            r#"{"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 1000000000000}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#,
            "'units' must be between 1 and 1048576",
        ),
        (
            "kernel",
            r#"{"class_name": "Conv2D", "name": "out", "config": {"name": "out", "filters": 1048576, "kernel_size": [1024, 1024], "strides": [1, 1], "padding": "same"}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#,
            "beyond keras-tch's limit",
        ),
        (
            "strides",
            r#"{"class_name": "Conv2D", "name": "out", "config": {"name": "out", "filters": 2, "kernel_size": [3, 3], "strides": [0, 0], "padding": "same"}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#,
            "strides must be between 1 and 1048576, got 0",
        ),
        (
            "negative",
            r#"{"class_name": "Dense", "name": "out", "config": {"name": "out", "units": -4}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#,
            "'units' must be between 1",
        ),
    ];
    for (what, layer, expected) in cases {
        let path = dir.join(format!("{what}.h5"));
        model_config_file(&path, &functional(&format!("{INPUT_8X8X3}, {layer}")));
        let Err(error) = load_model(&path, Device::Cpu) else { panic!("{what}: the file loaded") };
        let message = format!("{error:#}");
        assert!(message.contains("layer 'out'") && message.contains(expected), "{what}: {message}");
        // A caller can match the field, as a typed error.
        let field = match what {
            "kernel" => continue,
            "negative" => "units",
            field => field,
        };
        let typed = error.chain().find_map(|cause| cause.downcast_ref::<keras_tch::Error>());
        assert!(matches!(typed, Some(keras_tch::Error::InvalidConfigField { field: f, .. }) if f == field), "{what}: {typed:?}");
    }
    // A huge input feeding a Dense layer: the kernel would be 10^12 × 3 × 10 floats.
    let path = dir.join("input.h5");
    let input = r#"{"class_name": "InputLayer", "name": "input", "config": {"name": "input", "batch_input_shape": [null, 1000000, 1000000, 3]}, "inbound_nodes": []}"#;
    let flatten = r#"{"class_name": "Flatten", "name": "flat", "config": {"name": "flat"}, "inbound_nodes": [[["input", 0, 0, {}]]]}"#;
    let dense =
        r#"{"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 10}, "inbound_nodes": [[["flat", 0, 0, {}]]]}"#;
    model_config_file(&path, &functional(&format!("{input}, {flatten}, {dense}")));
    let message = error_of(load_model(&path, Device::Cpu));
    assert!(message.contains("layer 'out'") && message.contains("beyond keras-tch's limit"), "{message}");
}

#[test]
fn an_inbound_node_index_that_does_not_exist_is_refused() {
    let dir = scratch_dir("inbound-index");
    let path = dir.join("index.h5");
    let dense =
        r#"{"class_name": "Dense", "name": "out", "config": {"name": "out", "units": 2}, "inbound_nodes": [[["input", 3, 0, {}]]]}"#;
    model_config_file(&path, &functional(&format!("{INPUT_8X8X3}, {dense}")));
    let message = error_of(load_model(&path, Device::Cpu));
    assert!(message.contains("layer 'out'") && message.contains("node index 3"), "{message}");
}

#[test]
fn a_model_config_that_is_not_text_names_the_file_and_attribute() {
    let dir = scratch_dir("config-int");
    let path = dir.join("ints.h5");
    let file = hdf5::File::create(&path).unwrap();
    file.new_attr::<i64>().shape([3]).create("model_config").unwrap().write_raw(&[1i64, 2, 3]).unwrap();
    drop(file);
    let message = error_of(load_model(&path, Device::Cpu));
    assert!(message.contains("ints.h5") && message.contains("attribute 'model_config'"), "{message}");
}

/// A `.keras` archive whose `model.weights.h5` inflates far beyond its compressed size.
fn zip_bomb(path: &Path, config: &str, inflated: usize) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let deflated = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("config.json", deflated).unwrap();
    zip.write_all(config.as_bytes()).unwrap();
    zip.start_file("model.weights.h5", deflated).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated >> 20 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_keras_zip_bomb_is_refused_without_inflating_it() {
    let Some(fixture) = keras_fixture("keras3_happy") else { return };
    let archive = zip::ZipArchive::new(std::fs::File::open(fixture.join("model.keras")).unwrap());
    let mut archive = archive.unwrap();
    let mut config = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("config.json").unwrap(), &mut config).unwrap();
    let dir = scratch_dir("zip-bomb");
    let path = dir.join("bomb.keras");
    zip_bomb(&path, &config, 1 << 30);
    assert!(std::fs::metadata(&path).unwrap().len() < 8 << 20, "the bomb is small on disk");
    let message = error_of(load_model(&path, Device::Cpu));
    assert!(message.contains("model.weights.h5") && message.contains("zip bomb"), "{message}");
}

#[test]
fn npy_headers_with_impossible_shapes_are_refused() {
    let dir = scratch_dir("npy-shapes");
    let npy = |name: &str, shape: &str| -> PathBuf {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 16]);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let message = error_of(read_npy(&npy("overflow.npy", "(4611686018427387904, 4611686018427387904)")));
    assert!(message.contains("overflow.npy") && message.contains("too large"), "{message}");
    let message = error_of(read_npy(&npy("negative.npy", "(-4, 1)")));
    assert!(message.contains("negative dimension"), "{message}");
}

#[test]
fn a_fifo_given_as_a_model_is_refused_at_once() {
    let dir = scratch_dir("fifo-model");
    let fifo = dir.join("model.h5");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    // Opening a FIFO for reading blocks until a writer comes: the check must come first.
    let message = error_of(load_model(&fifo, Device::Cpu));
    assert!(message.contains("FIFO") && message.contains("not a regular file"), "{message}");
    let message = error_of(read_npy(&fifo));
    assert!(message.contains("FIFO"), "{message}");
}

#[test]
fn weights_stored_as_float16_or_float64_load_as_keras_loads_them() {
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let Some(python) = common::keras_python() else { return };
    let dir = scratch_dir("weight-dtypes");
    for dtype in ["float16", "float64"] {
        let converted = dir.join(format!("model_{dtype}.h5"));
        let keras_outputs = dir.join(format!("y_{dtype}.h5"));
        let run = |script: &str, args: &[&std::ffi::OsStr]| {
            let output = std::process::Command::new(&python)
                .arg(common::repo_root().join("scripts").join(script))
                .args(args)
                .env("TF_CPP_MIN_LOG_LEVEL", "3")
                .output()
                .unwrap();
            assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
        };
        let model_h5 = fixture.join("model.h5");
        run(
            "weights_dtype.py",
            &["--input".as_ref(), model_h5.as_os_str(), "--output".as_ref(), converted.as_os_str(), "--dtype".as_ref(), dtype.as_ref()],
        );
        // Keras's outputs on the converted file are the reference.
        let io = fixture.join("io.h5");
        let (keras_y, _) = common::parity::keras_check(&python, &["--model".as_ref(), converted.as_os_str()], &io, &keras_outputs);
        let model = load_model(&converted, Device::Cpu).unwrap_or_else(|e| panic!("{dtype}: {e:#}"));
        let ours = model.predict(&common::parity::read_tensor(&io, "x")).unwrap();
        common::parity::assert_close(&format!("{dtype} weights"), &ours, &keras_y);
    }
}

/// libhdf5 itself crashes on some corrupt files (found by the fuzzer: a SIGSEGV in `H5HG_read`,
/// heap corruption that glibc stops with SIGABRT). keras-tch reads HDF5 in a child process, so
/// each is an error naming the file, and this process goes on.
#[test]
fn a_file_that_crashes_libhdf5_is_an_error_naming_it() {
    let folder = common::repo_root().join("tests/fuzz_support/regressions/h5-weights");
    for (name, signal) in [("libhdf5-segv-in-h5hg-read.h5", "SIGSEGV"), ("libhdf5-heap-corruption-free-abort.h5", "SIGABRT")] {
        let path = folder.join(name);
        let message = error_of(read_weights(&path));
        assert!(message.contains(&format!("libhdf5 crashed ({signal})")) && message.contains(name), "{name}: {message}");
    }
    // And the process is still fine: a sound file reads as before.
    let Some(fixture) = keras_fixture("h5_weights_keras") else { return };
    assert!(read_weights(&fixture.join("weights.h5")).is_ok());
}

/// Every HDF5 read forks a child while other threads may be inside libhdf5 or waiting for its
/// lock; none of those reads may stall (a child once inherited the lock as handed over to a
/// thread that does not exist in it, and another a panic-hook lock, and each waited until the
/// time limit). Two threads load models while two write HDF5 files in this process.
#[test]
fn hdf5_reads_from_many_threads_at_once_all_finish() {
    let Some(fixture) = keras_fixture("h5_happy") else { return };
    let model_file = fixture.join("model.h5");
    let scratch = scratch_dir("concurrent-hdf5");
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let (model_file, scratch) = (model_file.clone(), scratch.to_path_buf());
            std::thread::spawn(move || -> usize {
                let model = load_model(&model_file, Device::Cpu).unwrap();
                for round in 0..6 {
                    if thread % 2 == 0 {
                        assert_eq!(load_model(&model_file, Device::Cpu).unwrap().layers().len(), model.layers().len());
                    } else {
                        let out = scratch.join(format!("copy-{thread}-{round}.h5"));
                        keras_tch::io::save_model_h5(&model, &out).unwrap();
                    }
                }
                model.layers().len()
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Far below the 30 s a stalled read would take to be stopped.
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}
