//! Writing Keras 3 `.keras` archives (`keras/src/saving/saving_lib.py`): a zip holding
//! `metadata.json`, `config.json` (the functional config in Keras 3's dialect: `module`,
//! `registered_name`, `build_config`, connections as call arguments) and `model.weights.h5`
//! (`layers/<class name + counter>/vars/<i>`, each `vars` group naming its layer, as Keras ≥ 3.6
//! writes). Keras 3's `keras.models.load_model` reads it back.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use hdf5::types::VarLenUnicode;
use serde_json::{json, Value};

use super::atomic::write_bytes_atomically;
use super::hdf5_image::{create_in_memory, file_image};
use super::load_weights::keras3_group_names;
use crate::graph::{Model, NodeId};
use crate::train::compile::CompileConfig;
use crate::train::optimizer::OptimizerConfig;

/// The Keras whose `.keras` format this follows.
const KERAS3_FORMAT_VERSION: &str = "3.15.1";

/// `model.save("model.keras")`.
pub fn save_model_keras(model: &Model, path: &Path) -> Result<()> {
    let config = keras3_config(model)?;
    let weights = write_weights_to_bytes(model)?;
    let build = || -> Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("metadata.json", stored)?;
        zip.write_all(json!({ "keras_version": KERAS3_FORMAT_VERSION, "date_saved": "keras-tch" }).to_string().as_bytes())?;
        zip.start_file("config.json", stored)?;
        zip.write_all(config.to_string().as_bytes())?;
        zip.start_file("model.weights.h5", stored)?;
        zip.write_all(&weights)?;
        Ok(zip.finish()?.into_inner())
    };
    build()
        .and_then(|bytes| write_bytes_atomically(path, &bytes))
        .with_context(|| format!("saving model '{}' as a .keras archive", model.name))
}

/// Keras 3's `config.json` for the graph (and `compile_config` when the model is compiled).
fn keras3_config(model: &Model) -> Result<Value> {
    let tensor = |id: &NodeId| {
        let node = model.node(*id);
        json!({
            "class_name": "__keras_tensor__",
            "config": { "shape": batch_shape(&node.output_shape), "dtype": "float32", "keras_history": [node.name, 0, 0] }
        })
    };
    let layers: Vec<Value> = model
        .layers()
        .iter()
        .map(|node| {
            let class = node.layer.class_name();
            let mut config = node.layer.keras_config();
            let map = config.as_object_mut().expect("layer configs are objects");
            if class == "InputLayer" {
                map.clear();
                map.insert("batch_shape".into(), batch_shape(&node.output_shape));
                map.insert("dtype".into(), json!("float32"));
                map.insert("sparse".into(), json!(false));
            } else {
                map.insert("trainable".into(), json!(node.trainable));
                map.insert("dtype".into(), json!("float32"));
            }
            map.insert("name".into(), json!(node.name));
            let inputs: Vec<Value> = node.inbound.iter().map(tensor).collect();
            let args = match inputs.len() {
                0 => None,
                1 if !matches!(class, "Add" | "Concatenate") => Some(json!([inputs[0]])),
                _ => Some(json!([inputs])),
            };
            let input_shapes: Vec<Value> = node.inbound.iter().map(|id| batch_shape(&model.node(*id).output_shape)).collect();
            let mut layer = json!({
                "module": "keras.layers",
                "class_name": class,
                "config": config,
                "registered_name": null,
                "name": node.name,
                "inbound_nodes": args.map_or(json!([]), |args| json!([{ "args": args, "kwargs": {} }])),
            });
            if !input_shapes.is_empty() {
                let shape = if input_shapes.len() == 1 { input_shapes[0].clone() } else { json!(input_shapes) };
                layer["build_config"] = json!({ "input_shape": shape });
            }
            layer
        })
        .collect();
    let refs = |ids: &[NodeId]| -> Value {
        let list: Vec<Value> = ids.iter().map(|id| json!([model.node(*id).name, 0, 0])).collect();
        if list.len() == 1 {
            list[0].clone()
        } else {
            json!(list)
        }
    };
    let mut config = json!({
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "build_config": { "input_shape": null },
        "config": {
            "name": model.name,
            "trainable": true,
            "layers": layers,
            "input_layers": refs(model.inputs()),
            "output_layers": refs(model.outputs()),
        }
    });
    if let Some(training) = &model.training_config {
        let compile = CompileConfig::from_keras(training)?;
        let optimizer = OptimizerConfig::from_keras(&training["optimizer_config"]).unwrap_or(OptimizerConfig::adam(1e-3));
        let mut optimizer = optimizer.keras_config();
        optimizer["module"] = json!("keras.optimizers");
        optimizer["registered_name"] = Value::Null;
        config["compile_config"] = json!({
            "optimizer": optimizer,
            "loss": compile.loss.keras_name(),
            "loss_weights": null,
            "metrics": if compile.accuracy.is_some() { json!(["accuracy"]) } else { json!(null) },
            "weighted_metrics": null,
            "run_eagerly": false,
            "steps_per_execution": 1,
            "jit_compile": false,
        });
    }
    Ok(config)
}

fn batch_shape(shape: &[i64]) -> Value {
    let mut dims = vec![Value::Null];
    dims.extend(shape.iter().map(|&d| json!(d)));
    Value::Array(dims)
}

/// `model.weights.h5` in Keras 3's layout, as bytes (it goes inside the zip).
fn write_weights_to_bytes(model: &Model) -> Result<Vec<u8>> {
    let file = create_in_memory()?;
    let groups = keras3_group_names(model);
    let by_layer: std::collections::HashMap<&str, &str> = groups.iter().map(|(g, l)| (l.as_str(), g.as_str())).collect();
    let layers = file.create_group("layers")?;
    for node in model.layers() {
        let group = layers.create_group(by_layer[node.name.as_str()])?;
        let vars = group.create_group("vars")?;
        write_name(&vars, &node.name)?;
        for (index, weight) in node.layer.weights().iter().enumerate() {
            let value = weight.layout.to_keras(weight.tensor).to_device(tch::Device::Cpu).to_kind(tch::Kind::Float);
            let dims: Vec<usize> = value.size().iter().map(|&d| d as usize).collect();
            let data = Vec::<f32>::try_from(value.flatten(0, -1))?;
            vars.new_dataset::<f32>().shape(dims).create(index.to_string().as_str())?.write_raw(&data)?;
        }
    }
    write_name(&file.create_group("vars")?, &model.name)?;
    file_image(&file)
}

fn write_name(group: &hdf5::Group, name: &str) -> Result<()> {
    let value = VarLenUnicode::from_str(name).map_err(|e| anyhow::anyhow!("name {name}: {e}"))?;
    group.new_attr::<VarLenUnicode>().shape(()).create("name")?.write_scalar(&value)?;
    Ok(())
}
