//! Keras's model configuration JSON, both ways: the `model_config` attribute of Keras 2 /
//! tf.keras HDF5 files and the `config.json` of Keras 3 `.keras` archives are rebuilt into a
//! graph; a graph is written back as tf.keras 2.x's `model_config`.
//!
//! The two dialects differ in how they write connections: Keras 2 lists
//! `inbound_nodes: [[["conv1", 0, 0, {}], ...]]`; Keras 3 lists call arguments,
//! `inbound_nodes: [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history":
//! ["conv1", 0, 0]}}], "kwargs": {}}]` (a list of tensors for merges). Keras 3 also writes
//! `batch_shape` where Keras 2 writes `batch_input_shape`.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tch::Device;

use super::limits;
use crate::error::Error;
use crate::graph::{GraphBuilder, KerasVersion, Model, Node, NodeId};
use crate::layers::init::InitialWeights;
use crate::layers::input::{batch_shape, InputLayer};
use crate::layers::keras_config::KerasConfig;
use crate::layers::registry::{layer_class, supported_class_names, FromConfig, FromKerasConfig};
use crate::layers::Shape;

/// Rebuild the functional (or Sequential) model a Keras config describes, its weights starting
/// as `initial` says (Keras's initializers, as `model_from_json` gives, or zeros when a file's
/// weights will replace them all).
pub fn model_from_config(config: &Value, initial: InitialWeights, device: Device) -> Result<Model> {
    let class = config["class_name"].as_str().unwrap_or("");
    let body = &config["config"];
    let name = body["name"].as_str().unwrap_or("model");
    let layers = body["layers"].as_array().context("the model config has no 'layers' list")?;
    let mut g = GraphBuilder::new(name, device).with_initial_weights(initial);
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let sequential = class == "Sequential";
    let mut previous: Option<NodeId> = None;
    let mut parameters: u128 = 0;
    if sequential {
        // Keras 2 Sequential configs may put the input shape on the first layer.
        let first = layers.first().context("empty Sequential model")?;
        if first["class_name"] != "InputLayer" {
            let input = InputLayer::from_keras_config(&KerasConfig::new("InputLayer", &first["config"]))
                .context("a Sequential model whose first layer has no batch_input_shape")?;
            previous = Some(g.input(None, &input.shape)?);
        }
    }
    for layer in layers {
        let class = layer["class_name"].as_str().context("a layer without class_name")?;
        let layer_config = &layer["config"];
        let layer_name = layer["name"].as_str().or(layer_config["name"].as_str()).context("a layer without a name")?;
        let inbound = if sequential {
            previous.into_iter().collect()
        } else {
            inbound_names(&layer["inbound_nodes"])
                .with_context(|| format!("reading the connections of layer '{layer_name}'"))?
                .iter()
                .map(|n| {
                    ids.get(n).copied().with_context(|| format!("layer '{layer_name}' reads '{n}', which comes later or does not exist"))
                })
                .collect::<Result<Vec<_>>>()?
        };
        let id = rebuild_layer(&mut g, class, layer_name, layer_config, &inbound, &mut parameters)
            .with_context(|| format!("rebuilding layer '{layer_name}' ({class}) of model '{name}'"))?;
        ids.insert(layer_name.to_string(), id);
        previous = Some(id);
    }
    let outputs: Vec<NodeId> = if sequential {
        previous.into_iter().collect()
    } else {
        layer_refs(&body["output_layers"])?
            .iter()
            .map(|n| ids.get(n).copied().with_context(|| format!("output layer '{n}' is not in the model")))
            .collect::<Result<_>>()?
    };
    let mut model = g.finish(&outputs)?;
    // Frozen layers (transfer-learning models) stay frozen.
    for layer in layers {
        if layer["config"]["trainable"].as_bool() == Some(false) {
            let name = layer["name"].as_str().or(layer["config"]["name"].as_str()).unwrap_or_default().to_string();
            model.set_trainable(&name, false)?;
        }
    }
    Ok(model)
}

/// Names of the layers feeding a layer, from either dialect of `inbound_nodes`.
fn inbound_names(nodes: &Value) -> Result<Vec<String>> {
    let Some(nodes) = nodes.as_array() else { return Ok(Vec::new()) };
    let Some(first) = nodes.first() else { return Ok(Vec::new()) };
    if nodes.len() > 1 {
        bail!("the layer is called {} times (shared layers are not supported)", nodes.len());
    }
    if let Some(args) = first.get("args") {
        // Keras 3: keras tensors among the call arguments (nested in a list for merges).
        let mut names = Vec::new();
        collect_keras_history(args, &mut names);
        return Ok(names);
    }
    // Keras 2: a list of [layer_name, node_index, tensor_index(, kwargs)]. Every layer here is
    // called once and has one output, so both indices must be 0.
    first
        .as_array()
        .context("unexpected inbound_nodes format")?
        .iter()
        .map(|entry| {
            let name = entry[0].as_str().map(str::to_string).with_context(|| format!("unexpected inbound entry {entry}"))?;
            for (position, what) in [(1, "node index"), (2, "tensor index")] {
                let index = &entry[position];
                if !(index.is_null() || index.as_i64() == Some(0)) {
                    bail!(
                        "the input from '{name}' names {what} {index}, which does not exist (every layer here has one call and one output)"
                    );
                }
            }
            Ok(name)
        })
        .collect()
}

fn collect_keras_history(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(map) if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") => {
            let history = map.get("config").map_or(&Value::Null, |config| &config["keras_history"]);
            if let Some(name) = history[0].as_str() {
                // Node and tensor indices other than 0 would name a call or output that no
                // layer here has; the name is then reported as not found.
                let indices_ok = [1, 2].iter().all(|&i| history[i].as_i64().is_none_or(|v| v == 0));
                names.push(if indices_ok { name.to_string() } else { format!("{name}[{}][{}]", history[1], history[2]) });
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keras_history(v, names)),
        _ => {}
    }
}

/// `[["fc", 0, 0], ...]` or Keras 3's single `["fc", 0, 0]` -> names.
fn layer_refs(value: &Value) -> Result<Vec<String>> {
    let list = value.as_array().context("missing input_layers/output_layers")?;
    if list.first().is_some_and(Value::is_string) {
        return Ok(vec![list[0].as_str().unwrap().to_string()]);
    }
    list.iter().map(|r| r[0].as_str().map(str::to_string).context("bad layer reference")).collect()
}

/// Rebuild one layer through the registry, counting its weights first: a model whose weights
/// would exceed [`limits::MAX_PARAMETER_BYTES`] is refused before anything is allocated, so a
/// config asking for 10^12 filters is an error naming the layer, not an allocation failure.
fn rebuild_layer(
    g: &mut GraphBuilder,
    class_name: &str,
    name: &str,
    config: &Value,
    inbound: &[NodeId],
    total: &mut u128,
) -> Result<NodeId> {
    let class = layer_class(class_name)
        .ok_or_else(|| Error::UnsupportedLayerClass { class: class_name.to_string(), supported: supported_class_names() })?;
    let layer = (class.from_keras_config)(&KerasConfig::new(class.class_name, config))?;
    if let FromConfig::WithWeights(build) = &layer {
        let shapes: Vec<Shape> = inbound.iter().map(|id| g.shape(*id).clone()).collect();
        *total += build.parameter_count(&shapes);
        let bytes = *total * 4;
        if bytes > limits::MAX_PARAMETER_BYTES as u128 {
            bail!(
                "this layer brings the model to {total} parameters ({bytes} bytes as float32), beyond keras-tch's limit of {} bytes; \
                 the config is corrupt or not a model this machine could hold",
                limits::MAX_PARAMETER_BYTES
            );
        }
    }
    g.add_from_config(Some(name), layer, inbound)
}

/// Keras's configuration of a graph, in either dialect: tf.keras 2.x's `model_config` (what
/// `tf_keras.models.load_model` rebuilds) or the body of Keras 3's `config.json` (module and
/// registered names, `build_config`, connections as call arguments).
pub fn model_config(model: &Model, keras: KerasVersion) -> Value {
    let layers: Vec<Value> = model.layers().iter().map(|node| layer_entry(model, node, keras)).collect();
    let refs = |ids: &[NodeId]| -> Value {
        let list: Vec<Value> = ids.iter().map(|id| json!([model.node(*id).name, 0, 0])).collect();
        // Keras 3 writes a single input or output unwrapped.
        match (keras, list.len()) {
            (KerasVersion::Keras3, 1) => list[0].clone(),
            _ => Value::Array(list),
        }
    };
    let body = json!({
        "name": model.name,
        "trainable": true,
        "layers": layers,
        "input_layers": refs(model.inputs()),
        "output_layers": refs(model.outputs()),
    });
    match keras {
        KerasVersion::Keras2 => json!({ "class_name": "Functional", "config": body }),
        KerasVersion::Keras3 => json!({
            "module": "keras.src.models.functional",
            "class_name": "Functional",
            "registered_name": "Functional",
            "build_config": { "input_shape": null },
            "config": body,
        }),
    }
}

/// One entry of the `layers` list.
fn layer_entry(model: &Model, node: &Node, keras: KerasVersion) -> Value {
    let class = node.layer.class_name();
    let mut config = match keras {
        KerasVersion::Keras2 => node.layer.keras_config(),
        KerasVersion::Keras3 => node.layer.keras3_config(),
    };
    let map = config.as_object_mut().expect("layer configs are objects");
    map.insert("name".into(), json!(node.name));
    // InputLayer's constructor takes no `trainable` (and carries its own dtype).
    if class != "InputLayer" {
        map.insert("trainable".into(), json!(node.trainable));
        map.insert("dtype".into(), json!("float32"));
    }
    match keras {
        KerasVersion::Keras2 => {
            let inbound: Vec<Value> = node.inbound.iter().map(|id| json!([model.node(*id).name, 0, 0, {}])).collect();
            json!({
                "class_name": class,
                "config": config,
                "name": node.name,
                "inbound_nodes": if inbound.is_empty() { json!([]) } else { json!([inbound]) },
            })
        }
        KerasVersion::Keras3 => {
            let tensor = |id: &NodeId| {
                let input = model.node(*id);
                json!({
                    "class_name": "__keras_tensor__",
                    "config": { "shape": batch_shape(&input.output_shape), "dtype": "float32", "keras_history": [input.name, 0, 0] }
                })
            };
            let inputs: Vec<Value> = node.inbound.iter().map(tensor).collect();
            // A merge takes its inputs as one list argument; other layers one tensor.
            let args = match inputs.len() {
                0 => None,
                1 if !matches!(class, "Add" | "Concatenate") => Some(json!([inputs[0]])),
                _ => Some(json!([inputs])),
            };
            let mut entry = json!({
                "module": "keras.layers",
                "class_name": class,
                "config": config,
                "registered_name": null,
                "name": node.name,
                "inbound_nodes": args.map_or(json!([]), |args| json!([{ "args": args, "kwargs": {} }])),
            });
            let input_shapes: Vec<Value> = node.inbound.iter().map(|id| batch_shape(&model.node(*id).output_shape)).collect();
            if !input_shapes.is_empty() {
                let shape = if input_shapes.len() == 1 { input_shapes[0].clone() } else { json!(input_shapes) };
                entry["build_config"] = json!({ "input_shape": shape });
            }
            entry
        }
    }
}
