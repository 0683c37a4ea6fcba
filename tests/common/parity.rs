//! Comparing a model here with the Keras model that scripts/keras_fixtures.py saved: the layer
//! table (layers.tsv), the counts, and outputs/activations with Keras's weights loaded.

use std::path::Path;

use keras_tch::graph::{keras_shape, Model};
use tch::Tensor;

use super::{keras_fixture, read_f32};

/// One row of Keras's layers.tsv.
#[derive(Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub class: String,
    pub shape: String,
    pub params: i64,
    pub trainable: i64,
    pub inbound: String,
}

pub fn keras_rows(fixture: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(fixture.join("layers.tsv")).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            Row {
                name: f[0].into(),
                class: f[1].into(),
                shape: f[2].into(),
                params: f[3].parse().unwrap(),
                trainable: f[4].parse().unwrap(),
                inbound: f.get(5).copied().unwrap_or("").into(),
            }
        })
        .collect()
}

pub fn our_rows(model: &Model) -> Vec<Row> {
    model
        .layers()
        .iter()
        .map(|node| Row {
            name: node.name.clone(),
            class: node.layer.class_name().into(),
            shape: keras_shape(&node.output_shape),
            params: node.param_count(),
            trainable: node.trainable_param_count(),
            inbound: node.inbound.iter().map(|id| model.node(*id).name.clone()).collect::<Vec<_>>().join(","),
        })
        .collect()
}

pub fn keras_counts(fixture: &Path, file: &str) -> (i64, i64, i64) {
    let text = std::fs::read_to_string(fixture.join(file)).unwrap();
    let value = |key: &str| -> i64 {
        text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {file}")).trim().parse().unwrap()
    };
    (value("total "), value("trainable "), value("non_trainable "))
}

pub fn assert_same_table(fixture_name: &str, model: &Model) {
    let Some(fixture) = keras_fixture(fixture_name) else { return };
    let keras = keras_rows(&fixture);
    let ours = our_rows(model);
    for (i, (k, o)) in keras.iter().zip(&ours).enumerate() {
        assert_eq!(o, k, "{fixture_name}: layer #{i} differs (ours, then Keras)");
    }
    assert_eq!(ours.len(), keras.len(), "{fixture_name}: number of layers");
    assert_eq!(model.param_counts(), keras_counts(&fixture, "counts.txt"), "{fixture_name}: counts");
}

/// Load every weight of the fixture's weights.h5 (Keras layout, one group per layer) into the
/// model, and check every weight of the model was given one.
pub fn load_keras_weights(model: &Model, file: &Path) {
    let h5 = hdf5::File::open(file).unwrap();
    let mut loaded = 0;
    for group in h5.groups().unwrap() {
        let layer = group.name().trim_start_matches('/').to_string();
        for ds in group.datasets().unwrap() {
            let weight = ds.name().rsplit('/').next().unwrap().to_string();
            let dims: Vec<i64> = ds.shape().iter().map(|&d| d as i64).collect();
            let value = Tensor::from_slice(&ds.read_raw::<f32>().unwrap()).reshape(&dims);
            model.set_keras_weight(&layer, &weight, &value).unwrap();
            loaded += 1;
        }
    }
    let expected: usize = model.layers().iter().map(|n| n.layer.weights().len()).sum();
    assert_eq!(loaded, expected, "weights in {} vs weights of the model", file.display());
}

/// A float32 dataset of a fixture file as a tensor of its shape.
pub fn read_tensor(file: &Path, dataset: &str) -> Tensor {
    let (values, shape) = read_f32(file, dataset);
    tensor(values, &shape)
}

pub fn tensor(values: Vec<f32>, shape: &[usize]) -> Tensor {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&values).reshape(&dims)
}

/// max |ours − keras| ≤ 1e-4 · max(1, max |keras|): 1e-4 absolute for bounded outputs
/// (probabilities), 1e-4 relative to the tensor's scale for unbounded activations (deep random
/// networks reach 1e4, where float32 rounding alone differs in the 1e-6 relative range).
pub fn assert_close(what: &str, ours: &Tensor, keras: &Tensor) {
    assert_eq!(ours.size(), keras.size(), "{what}: shape");
    let scale = keras.abs().max().double_value(&[]).max(1.0);
    let diff = (ours - keras).abs().max().double_value(&[]);
    assert!(diff <= 1e-4 * scale, "{what}: max |ours − keras| = {diff:e} exceeds 1e-4 × {scale}");
}

/// Load the fixture's weights, run its input, compare the output and each `act/<layer>`.
pub fn assert_same_outputs(fixture_name: &str, model: &Model) {
    let Some(fixture) = keras_fixture(fixture_name) else { return };
    load_keras_weights(model, &fixture.join("weights.h5"));
    let io = fixture.join("io.h5");
    let (x, x_shape) = read_f32(&io, "x");
    let x = tensor(x, &x_shape);
    let (y, y_shape) = read_f32(&io, "y");
    let ours = model.predict(&x).unwrap();
    let h5 = hdf5::File::open(&io).unwrap();
    if let Ok(group) = h5.group("act") {
        let mut names: Vec<String> = group.member_names().unwrap();
        // Compare in graph order so the first failure is the first layer that diverges.
        names.sort_by_key(|n| model.layer_id(n).map(|id| model.layers().iter().position(|l| l.name == model.node(id).name)).ok());
        for name in names {
            let (act, shape) = read_f32(&io, &format!("act/{name}"));
            let ours_act = model.activations(&[&x], &[&name]).unwrap().remove(0);
            assert_close(&format!("{fixture_name}: activation of '{name}'"), &ours_act, &tensor(act, &shape));
        }
    }
    assert_close(&format!("{fixture_name}: output"), &ours, &tensor(y, &y_shape));
}

/// `scripts/keras_check.py` (real Keras) with `args` (the loader, the model or weights), on the
/// dataset `x` of `input`, its outputs written to `output`: Keras's outputs and its `ok …` line.
/// A failure to load is the test's failure, with Keras's message.
pub fn keras_check(python: &Path, args: &[&std::ffi::OsStr], input: &Path, output: &Path) -> (Tensor, String) {
    let mut args = args.to_vec();
    args.extend(["--input".as_ref(), input.as_os_str(), "--output".as_ref(), output.as_os_str()]);
    let check = super::keras_check_server::run(python, &args);
    assert!(check.status == 0, "keras_check.py {args:?} failed: {}", check.stderr);
    let (y, shape) = read_f32(output, "y");
    let line = check.stdout.lines().find(|l| l.starts_with("ok ")).unwrap_or_default().to_string();
    (tensor(y, &shape), line)
}
