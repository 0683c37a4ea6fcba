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
use crate::graph::{GraphBuilder, Model, NodeId};
use crate::layers::activation::Activation;
use crate::layers::batch_norm::batch_norm;
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::merge::{Add, Concatenate};
use crate::layers::padding::{Padding, ZeroPadding2D};
use crate::layers::pooling::{GlobalPool2D, Pool2D, PoolKind};
use crate::layers::reshape::{Dropout, Flatten};

/// The layer classes this reader rebuilds (the architectures' layer set).
pub const SUPPORTED_CLASSES: &[&str] = &[
    "InputLayer",
    "Conv2D",
    "BatchNormalization",
    "Activation",
    "Dense",
    "ZeroPadding2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Flatten",
    "Dropout",
    "Add",
    "Concatenate",
];

/// Rebuild the functional (or Sequential) model a Keras config describes.
pub fn model_from_config(config: &Value, device: Device) -> Result<Model> {
    let class = config["class_name"].as_str().unwrap_or("");
    let body = &config["config"];
    let name = body["name"].as_str().unwrap_or("model");
    let layers = body["layers"].as_array().context("the model config has no 'layers' list")?;
    let mut g = GraphBuilder::new(name, device);
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let sequential = class == "Sequential";
    let mut previous: Option<NodeId> = None;
    let mut parameters: u128 = 0;
    if sequential {
        // Keras 2 Sequential configs may put the input shape on the first layer.
        let first = layers.first().context("empty Sequential model")?;
        if first["class_name"] != "InputLayer" {
            let shape = input_shape(&first["config"]).with_context(|| "a Sequential model whose first layer has no batch_input_shape")?;
            previous = Some(g.input(None, &shape)?);
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
        let input_shapes: Vec<Vec<i64>> = inbound.iter().map(|id| g.shape(*id).clone()).collect();
        let id = count_parameters(class, layer_config, &input_shapes, &mut parameters)
            .and_then(|()| add_layer(&mut g, class, layer_name, layer_config, &inbound))
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

fn input_shape(config: &Value) -> Result<Vec<i64>> {
    let shape = config
        .get("batch_input_shape")
        .or_else(|| config.get("batch_shape"))
        .and_then(Value::as_array)
        .context("no batch_input_shape / batch_shape")?;
    let Some((_batch, dims)) = shape.split_first() else { bail!("batch_input_shape is empty; expected [null, H, W, C]") };
    dims.iter()
        .map(|d| {
            let d = d.as_i64().context("input dimensions other than the batch must be fixed numbers")?;
            bounded(d, 1, "input dimensions")
        })
        .collect()
}

/// `value` if it is in `min..=limits::MAX_DIMENSION`.
fn bounded(value: i64, min: i64, what: &str) -> Result<i64> {
    if value < min || value > limits::MAX_DIMENSION {
        bail!("{what} must be between {min} and {}, got {value}", limits::MAX_DIMENSION);
    }
    Ok(value)
}

/// A `pair` of sizes that must be at least 1 (kernel sizes, strides, dilations, pool sizes).
fn positive_pair(value: &Value, what: &str) -> Result<[i64; 2]> {
    let [a, b] = pair(value, what)?;
    Ok([bounded(a, 1, what)?, bounded(b, 1, what)?])
}

/// Add the weights a layer of `class` would create to `total`, refusing a model whose weights
/// would exceed [`limits::MAX_PARAMETER_BYTES`] — before anything is allocated, so a config
/// asking for 10^12 filters is an error naming the layer, not an allocation failure.
fn count_parameters(class: &str, config: &Value, input_shapes: &[Vec<i64>], total: &mut u128) -> Result<()> {
    let size = |key: &str| -> Result<u128> {
        let value = config[key].as_i64().with_context(|| format!("{class} needs a whole number '{key}', got {}", config[key]))?;
        Ok(bounded(value, 1, &format!("'{key}'"))? as u128)
    };
    let channels = || -> u128 { input_shapes.first().and_then(|s| s.last()).map_or(0, |&c| c.max(0) as u128) };
    let count = match class {
        "Conv2D" => {
            let [kh, kw] = positive_pair(&config["kernel_size"], "kernel_size")?;
            let filters = size("filters")?;
            kh as u128 * kw as u128 * channels() * filters + filters
        }
        "Dense" => {
            let units = size("units")?;
            channels() * units + units
        }
        "BatchNormalization" => 4 * channels(),
        _ => 0,
    };
    *total += count;
    let bytes = *total * 4;
    if bytes > limits::MAX_PARAMETER_BYTES as u128 {
        bail!(
            "this layer brings the model to {total} parameters ({bytes} bytes as float32), beyond keras-tch's limit of {} bytes; \
             the config is corrupt or not a model this machine could hold",
            limits::MAX_PARAMETER_BYTES
        );
    }
    Ok(())
}

fn pair(value: &Value, what: &str) -> Result<[i64; 2]> {
    match value {
        Value::Number(n) => {
            let v = n.as_i64().with_context(|| format!("{what} must be whole numbers"))?;
            Ok([v, v])
        }
        Value::Array(items) if items.len() == 2 => Ok([
            items[0].as_i64().with_context(|| format!("{what} must be whole numbers"))?,
            items[1].as_i64().with_context(|| format!("{what} must be whole numbers"))?,
        ]),
        other => bail!("{what} must be a number or a pair, got {other}"),
    }
}

fn padding(config: &Value) -> Result<Padding> {
    match config["padding"].as_str().unwrap_or("valid").to_ascii_lowercase().as_str() {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        other => bail!("padding '{other}' is not supported (valid, same)"),
    }
}

fn activation(config: &Value) -> Result<Activation> {
    match &config["activation"] {
        Value::Null => Ok(Activation::Linear),
        Value::String(name) => Activation::from_keras_name(name),
        // Keras 3 may serialize an activation as {"class_name": "function", "config": "relu", ...}.
        Value::Object(map) => Activation::from_keras_name(map.get("config").and_then(Value::as_str).unwrap_or("")),
        other => bail!("unreadable activation {other}"),
    }
}

fn channels_last(config: &Value) -> Result<()> {
    match config["data_format"].as_str() {
        None | Some("channels_last") => Ok(()),
        Some(other) => bail!("data_format '{other}' is not supported; keras-tch runs channels_last models"),
    }
}

fn add_layer(g: &mut GraphBuilder, class: &str, name: &str, config: &Value, inbound: &[NodeId]) -> Result<NodeId> {
    let single = || -> Result<NodeId> {
        match inbound {
            [one] => Ok(*one),
            _ => bail!("{class} takes one input, the config gives {}", inbound.len()),
        }
    };
    let name = Some(name);
    Ok(match class {
        "InputLayer" => g.input(name, &input_shape(config)?)?,
        "Conv2D" => {
            channels_last(config)?;
            if config["groups"].as_i64().unwrap_or(1) != 1 {
                bail!("grouped convolutions are not supported");
            }
            let [kh, kw] = positive_pair(&config["kernel_size"], "kernel_size")?;
            let mut conv = conv2d(config["filters"].as_i64().context("Conv2D without filters")?, kh);
            conv.kernel_size = [kh, kw];
            conv.strides = positive_pair(&config["strides"], "strides")?;
            conv.dilation =
                if config["dilation_rate"].is_null() { [1, 1] } else { positive_pair(&config["dilation_rate"], "dilation_rate")? };
            conv.padding = padding(config)?;
            conv.use_bias = config["use_bias"].as_bool().unwrap_or(true);
            conv.activation = activation(config)?;
            g.conv2d(name, conv, single()?)?
        }
        "BatchNormalization" => {
            if config["center"] == false || config["scale"] == false {
                bail!("BatchNormalization without center or scale is not supported");
            }
            let axis = match &config["axis"] {
                Value::Array(items) if items.len() == 1 => items[0].as_i64(),
                value => value.as_i64(),
            }
            .context("BatchNormalization over several axes is not supported")?;
            let bn = batch_norm()
                .axis(axis)
                .momentum(config["momentum"].as_f64().unwrap_or(0.99))
                .epsilon(config["epsilon"].as_f64().unwrap_or(1e-3));
            g.batch_norm(name, bn, single()?)?
        }
        "Activation" => g.add(name, activation(config)?, &[single()?])?,
        "Dense" => {
            let layer = dense(config["units"].as_i64().context("Dense without units")?)
                .activation(activation(config)?)
                .use_bias(config["use_bias"].as_bool().unwrap_or(true));
            g.dense(name, layer, single()?)?
        }
        "ZeroPadding2D" => {
            channels_last(config)?;
            let padding = match &config["padding"] {
                Value::Array(items) if items.len() == 2 && items[0].is_array() => {
                    [pair(&items[0], "padding")?, pair(&items[1], "padding")?]
                }
                value => {
                    let [h, w] = pair(value, "padding")?;
                    [[h, h], [w, w]]
                }
            };
            for &p in padding.iter().flatten() {
                bounded(p, 0, "padding")?;
            }
            g.add(name, ZeroPadding2D { padding }, &[single()?])?
        }
        "MaxPooling2D" | "AveragePooling2D" => {
            channels_last(config)?;
            let pool_size = positive_pair(&config["pool_size"], "pool_size")?;
            let strides = if config["strides"].is_null() { pool_size } else { positive_pair(&config["strides"], "strides")? };
            let kind = if class == "MaxPooling2D" { PoolKind::Max } else { PoolKind::Average };
            g.add(name, Pool2D { kind, pool_size, strides, padding: padding(config)? }, &[single()?])?
        }
        "GlobalAveragePooling2D" | "GlobalMaxPooling2D" => {
            channels_last(config)?;
            if config["keepdims"].as_bool() == Some(true) {
                bail!("keepdims=True is not supported");
            }
            let kind = if class == "GlobalMaxPooling2D" { PoolKind::Max } else { PoolKind::Average };
            g.add(name, GlobalPool2D { kind }, &[single()?])?
        }
        "Flatten" => {
            channels_last(config)?;
            g.add(name, Flatten, &[single()?])?
        }
        "Dropout" => {
            let rate = config["rate"].as_f64().context("Dropout without rate")?;
            if !(0.0..1.0).contains(&rate) {
                bail!("Dropout's rate must be in [0, 1), got {rate}");
            }
            g.add(name, Dropout { rate }, &[single()?])?
        }
        "Add" => g.add(name, Add, inbound)?,
        "Concatenate" => g.add(name, Concatenate { axis: config["axis"].as_i64().unwrap_or(-1) }, inbound)?,
        other => bail!("layer class '{other}' is not supported by keras-tch (supported: {})", SUPPORTED_CLASSES.join(", ")),
    })
}

/// tf.keras 2.x's `model_config` for a graph: what `tf_keras.models.load_model` rebuilds.
pub fn model_config(model: &Model) -> Value {
    let layers: Vec<Value> = model
        .layers()
        .iter()
        .map(|node| {
            let mut config = node.layer.keras_config();
            let map = config.as_object_mut().expect("layer configs are objects");
            map.insert("name".into(), json!(node.name));
            // InputLayer's constructor takes no `trainable` (and carries its own dtype).
            if node.layer.class_name() != "InputLayer" {
                map.insert("trainable".into(), json!(node.trainable));
                map.insert("dtype".into(), json!("float32"));
            }
            let inbound: Vec<Value> = node.inbound.iter().map(|id| json!([model.node(*id).name, 0, 0, {}])).collect();
            json!({
                "class_name": node.layer.class_name(),
                "config": config,
                "name": node.name,
                "inbound_nodes": if inbound.is_empty() { json!([]) } else { json!([inbound]) },
            })
        })
        .collect();
    let refs = |ids: &[NodeId]| -> Vec<Value> { ids.iter().map(|id| json!([model.node(*id).name, 0, 0])).collect() };
    json!({
        "class_name": "Functional",
        "config": {
            "name": model.name,
            "trainable": true,
            "layers": layers,
            "input_layers": refs(model.inputs()),
            "output_layers": refs(model.outputs()),
        }
    })
}
