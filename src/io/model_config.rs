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
use crate::graph::nesting::{inherited_training, local_name, placement, NestedModel, Placement};
use crate::graph::{GraphBuilder, KerasVersion, Model, Node, NodeId};
use crate::layers::init::InitialWeights;
use crate::layers::input::{batch_shape, InputLayer};
use crate::layers::keras_config::KerasConfig;
use crate::layers::registry::{layer_class, supported_class_names, FromConfig, FromKerasConfig};
use crate::layers::{Layer, Shape};

/// Rebuild the functional (or Sequential) model a Keras config describes, its weights starting
/// as `initial` says (Keras's initializers, as `model_from_json` gives, or zeros when a file's
/// weights will replace them all). Models used as layers are inlined (see
/// [`crate::graph::nesting`]).
pub fn model_from_config(config: &Value, initial: InitialWeights, device: Device) -> Result<Model> {
    let name = config["config"]["name"].as_str().unwrap_or("model");
    let mut g = GraphBuilder::new(name, device).with_initial_weights(initial);
    let mut rebuilt = Rebuilt::default();
    let outputs = add_model_layers(&mut g, config, None, 0, &mut rebuilt)?;
    let mut model = g.finish(&outputs)?;
    // Frozen layers (transfer-learning models) stay frozen.
    for name in &rebuilt.frozen {
        model.set_trainable(name, false)?;
    }
    Ok(model)
}

/// Models nested deeper than this are refused (Keras files nest one or two levels).
const MAX_NESTING_DEPTH: usize = 16;

/// What rebuilding has gathered across nested models.
#[derive(Default)]
struct Rebuilt {
    /// Weights counted so far, to refuse a corrupt config before allocating.
    parameters: u128,
    /// Layers whose config says `trainable: false` (or inside a nested model that does).
    frozen: Vec<String>,
}

/// Add the layers of the Functional or Sequential model `config` to `g` and return its
/// outputs. `bound_inputs`: for a model nested as a layer, the tensors its call takes, which
/// stand for its input layers.
fn add_model_layers(
    g: &mut GraphBuilder,
    config: &Value,
    bound_inputs: Option<&[NodeId]>,
    depth: usize,
    rebuilt: &mut Rebuilt,
) -> Result<Vec<NodeId>> {
    let class = config["class_name"].as_str().unwrap_or("");
    let body = &config["config"];
    let name = body["name"].as_str().unwrap_or("model");
    let layers = body["layers"].as_array().with_context(|| format!("the config of model '{name}' has no 'layers' list"))?;
    let sequential = class == "Sequential";
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let mut nested_models: Vec<String> = Vec::new();
    let mut previous: Option<NodeId> = None;
    let mut bound = bound_inputs.map(|inputs| inputs.iter().copied());
    let input_names = if sequential { Vec::new() } else { layer_refs(&body["input_layers"])? };
    if sequential {
        let first = layers.first().with_context(|| format!("Sequential model '{name}' has no layers"))?;
        if let Some(bound) = &mut bound {
            previous = bound.next();
        } else if first["class_name"] != "InputLayer" {
            // Keras 2 Sequential configs may put the input shape on the first layer.
            let input = InputLayer::from_keras_config(&KerasConfig::new("InputLayer", &first["config"]))
                .context("a Sequential model whose first layer has no batch_input_shape")?;
            previous = Some(g.input(None, &input.shape)?);
        }
    }
    for layer in layers {
        let class = layer["class_name"].as_str().context("a layer without class_name")?;
        let layer_config = &layer["config"];
        let layer_name = layer["name"].as_str().or(layer_config["name"].as_str()).context("a layer without a name")?;
        if class == "InputLayer" && bound_inputs.is_some() {
            // A nested model's input stands for the tensor its call takes.
            let tensor =
                if sequential { previous } else { input_position(&input_names, layer_name).and_then(|i| bound_inputs?.get(i).copied()) };
            let tensor = tensor.with_context(|| format!("model '{name}' has more inputs than its call gives it"))?;
            check_bound_input(g, layer_config, layer_name, name, tensor)?;
            ids.insert(layer_name.to_string(), tensor);
            continue;
        }
        let (inbound, call_training) = if sequential {
            (previous.into_iter().collect(), None)
        } else {
            let call = inbound_call(&layer["inbound_nodes"]).with_context(|| format!("reading the connections of layer '{layer_name}'"))?;
            let inbound =
                call.inputs
                    .iter()
                    .map(|input| {
                        let id = ids.get(&input.layer).copied().with_context(|| {
                            format!("layer '{layer_name}' reads '{}', which comes later or does not exist", input.layer)
                        })?;
                        input
                            .check_indices(nested_models.contains(&input.layer))
                            .with_context(|| format!("reading the connections of layer '{layer_name}'"))?;
                        Ok(id)
                    })
                    .collect::<Result<Vec<_>>>()?;
            (inbound, call.training)
        };
        let id = if NESTED_MODEL_CLASSES.contains(&class) {
            if depth >= MAX_NESTING_DEPTH {
                bail!("model '{name}' nests models deeper than {MAX_NESTING_DEPTH} levels");
            }
            let first_node = g.node_count();
            g.enter_nested_model(layer_name, class, call_training, nested_input_names(layer)?)?;
            let outputs = add_model_layers(g, layer, Some(&inbound), depth + 1, rebuilt)
                .with_context(|| format!("rebuilding the model nested as layer '{layer_name}' ({class}) of model '{name}'"))?;
            g.leave_nested_model();
            if layer_config["trainable"].as_bool() == Some(false) {
                rebuilt.frozen.extend((first_node..g.node_count()).map(|i| g.name_of(NodeId(i)).to_string()));
            }
            nested_models.push(layer_name.to_string());
            match outputs[..] {
                [output] => output,
                _ => bail!(
                    "the model nested as layer '{layer_name}' of model '{name}' has {} outputs; keras-tch reads nested models with one",
                    outputs.len()
                ),
            }
        } else {
            let id = rebuild_layer(g, class, layer_name, layer_config, &inbound, &mut rebuilt.parameters)
                .with_context(|| format!("rebuilding layer '{layer_name}' ({class}) of model '{name}'"))?;
            g.set_call_training(id, call_training);
            if layer_config["trainable"].as_bool() == Some(false) {
                rebuilt.frozen.push(g.name_of(id).to_string());
            }
            id
        };
        ids.insert(layer_name.to_string(), id);
        previous = Some(id);
    }
    if sequential {
        return Ok(previous.into_iter().collect());
    }
    layer_refs(&body["output_layers"])?
        .iter()
        .map(|n| ids.get(n).copied().with_context(|| format!("output layer '{n}' is not in model '{name}'")))
        .collect()
}

/// The Keras classes of models that can be layers of another model.
const NESTED_MODEL_CLASSES: &[&str] = &["Functional", "Sequential", "Model"];

/// The names of a nested model's own input layers.
fn nested_input_names(config: &Value) -> Result<Vec<String>> {
    if config["class_name"] == "Sequential" {
        let first = &config["config"]["layers"][0];
        let name = first["config"]["name"].as_str().or(first["name"].as_str());
        return Ok(name.filter(|_| first["class_name"] == "InputLayer").map(str::to_string).into_iter().collect());
    }
    layer_refs(&config["config"]["input_layers"])
}

fn input_position(input_names: &[String], layer_name: &str) -> Option<usize> {
    input_names.iter().position(|n| n == layer_name)
}

/// A nested model's input layer must have the shape of the tensor its call takes.
fn check_bound_input(g: &GraphBuilder, config: &Value, input_name: &str, model: &str, tensor: NodeId) -> Result<()> {
    let input = InputLayer::from_keras_config(&KerasConfig::new("InputLayer", config))
        .with_context(|| format!("reading input layer '{input_name}' of nested model '{model}'"))?;
    let given = g.shape(tensor);
    // Keras leaves unknown dimensions as None (read as -1 here): any size fits them.
    let fits = input.shape.len() == given.len() && input.shape.iter().zip(given).all(|(want, got)| *want < 0 || want == got);
    if !fits {
        bail!(
            "nested model '{model}' takes input '{input_name}' of shape {} but is called on '{}' of shape {}",
            crate::graph::keras_shape(&input.shape),
            g.name_of(tensor),
            crate::graph::keras_shape(given)
        );
    }
    Ok(())
}

/// One call of a layer, from either dialect of `inbound_nodes`: the tensors it takes and its
/// `training=` keyword.
struct InboundCall {
    inputs: Vec<InboundTensor>,
    training: Option<bool>,
}

/// A tensor a layer takes: output `tensor_index` of call `node_index` of `layer`.
struct InboundTensor {
    layer: String,
    node_index: i64,
    tensor_index: i64,
}

impl InboundTensor {
    /// Every layer here is called once and has one output, so both indices are 0 — except that
    /// tf.keras numbers a nested model's call 1 (its node 0 is its own graph).
    fn check_indices(&self, nested: bool) -> Result<()> {
        for (index, what, allowed) in [(self.node_index, "node index", if nested { 1 } else { 0 }), (self.tensor_index, "tensor index", 0)]
        {
            if index != 0 && index != allowed {
                bail!(
                    "the input from '{}' names {what} {index}, which does not exist (every layer here has one call and one output)",
                    self.layer
                );
            }
        }
        Ok(())
    }
}

/// The (single) call in `inbound_nodes`, from either dialect.
fn inbound_call(nodes: &Value) -> Result<InboundCall> {
    let none = InboundCall { inputs: Vec::new(), training: None };
    let Some(nodes) = nodes.as_array() else { return Ok(none) };
    let Some(first) = nodes.first() else { return Ok(none) };
    if nodes.len() > 1 {
        bail!("the layer is called {} times (shared layers are not supported)", nodes.len());
    }
    if let Some(args) = first.get("args") {
        // Keras 3: keras tensors among the call arguments (nested in a list for merges).
        let mut inputs = Vec::new();
        collect_keras_history(args, &mut inputs);
        return Ok(InboundCall { inputs, training: first["kwargs"]["training"].as_bool() });
    }
    // Keras 2: a list of [layer_name, node_index, tensor_index, kwargs].
    let entries = first.as_array().context("unexpected inbound_nodes format")?;
    let inputs = entries
        .iter()
        .map(|entry| {
            let layer = entry[0].as_str().map(str::to_string).with_context(|| format!("unexpected inbound entry {entry}"))?;
            let index = |position: usize| entry[position].as_i64().unwrap_or(0);
            Ok(InboundTensor { layer, node_index: index(1), tensor_index: index(2) })
        })
        .collect::<Result<Vec<_>>>()?;
    let training = entries.iter().find_map(|entry| entry[3]["training"].as_bool());
    Ok(InboundCall { inputs, training })
}

fn collect_keras_history(value: &Value, inputs: &mut Vec<InboundTensor>) {
    match value {
        Value::Object(map) if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") => {
            let history = map.get("config").map_or(&Value::Null, |config| &config["keras_history"]);
            if let Some(name) = history[0].as_str() {
                let index = |position: usize| history[position].as_i64().unwrap_or(0);
                inputs.push(InboundTensor { layer: name.to_string(), node_index: index(1), tensor_index: index(2) });
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keras_history(v, inputs)),
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
/// registered names, `build_config`, connections as call arguments). A model nested as a layer
/// is written back as one layer holding its own config (see [`crate::graph::nesting`]).
pub fn model_config(model: &Model, keras: KerasVersion) -> Value {
    let body = model_body(model, None, keras);
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

/// The `config` of the outer model (`nested`: `None`) or of a model nested in it: its layers
/// (each nested model one of them), inputs and outputs, named as seen from inside it.
fn model_body(model: &Model, nested: Option<&NestedModel>, keras: KerasVersion) -> Value {
    let scope = nested.map_or("", |n| n.path.as_str());
    let mut layers: Vec<Value> = Vec::new();
    let (inputs, outputs): (Vec<Reference>, Vec<Reference>) = match nested {
        None => (
            model.inputs().iter().map(|id| reference(model, scope, *id, keras)).collect(),
            model.outputs().iter().map(|id| reference(model, scope, *id, keras)).collect(),
        ),
        Some(nested) => {
            let call_inputs = nested_call_inputs(model, nested);
            for (position, id) in call_inputs.iter().enumerate() {
                let input = InputLayer { shape: model.node(*id).output_shape.clone() };
                layers.push(input_entry(&nested_input_name(nested, position), &input, keras));
            }
            let names = (0..call_inputs.len()).map(|position| (nested_input_name(nested, position), 0)).collect();
            (names, vec![reference(model, scope, nested_output(model, nested), keras)])
        }
    };
    let mut written: Vec<&str> = Vec::new();
    for node in model.layers() {
        match placement(model.nested_models(), scope, &node.name) {
            Placement::Outside => {}
            Placement::Direct => layers.push(layer_entry(model, node, scope, keras)),
            Placement::In(child) if !written.contains(&child.path.as_str()) => {
                written.push(&child.path);
                layers.push(nested_entry(model, child, keras));
            }
            Placement::In(_) => {}
        }
    }
    let refs = |list: Vec<Reference>| -> Value {
        let list: Vec<Value> = list.into_iter().map(|(name, node_index)| json!([name, node_index, 0])).collect();
        // Keras 3 writes a single input or output unwrapped.
        match (keras, list.len()) {
            (KerasVersion::Keras3, 1) => list[0].clone(),
            _ => Value::Array(list),
        }
    };
    let name = nested.map_or(model.name.as_str(), NestedModel::name);
    let trainable = nested.is_none_or(|nested| model.layers().iter().any(|n| nested.contains(&n.name) && n.trainable));
    json!({ "name": name, "trainable": trainable, "layers": layers, "input_layers": refs(inputs), "output_layers": refs(outputs) })
}

/// A layer's output as a config refers to it: the layer's name and its call's node index.
type Reference = (String, i64);

/// The name (and node index) by which the layers of the model at `scope` refer to the output of
/// layer `id`: its own name; a nested model's name if it is inside one (tf.keras numbers that
/// call 1, after the nested model's own graph); the nested model's input if it comes from outside.
fn reference(model: &Model, scope: &str, id: NodeId, keras: KerasVersion) -> Reference {
    let node = model.node(id);
    match placement(model.nested_models(), scope, &node.name) {
        Placement::Direct => (local_name(scope, &node.name).to_string(), 0),
        Placement::In(child) => (child.name().to_string(), if keras == KerasVersion::Keras2 { 1 } else { 0 }),
        Placement::Outside => {
            let nested = model.nested_models().iter().find(|n| n.path == scope).expect("a scope is a nested model");
            let position = nested_call_inputs(model, nested).iter().position(|input| *input == id).unwrap_or(0);
            (nested_input_name(nested, position), 0)
        }
    }
}

/// The tensors a nested model's call takes: the layers outside it that its layers read, in the
/// order they are first read.
fn nested_call_inputs(model: &Model, nested: &NestedModel) -> Vec<NodeId> {
    let mut inputs = Vec::new();
    for node in model.layers().iter().filter(|n| nested.contains(&n.name)) {
        for id in &node.inbound {
            if !nested.contains(&model.node(*id).name) && !inputs.contains(id) {
                inputs.push(*id);
            }
        }
    }
    inputs
}

/// The layer of a nested model whose output its call gives (read from outside it, or an output
/// of the whole model; one, as they are read).
fn nested_output(model: &Model, nested: &NestedModel) -> NodeId {
    let inside = |id: &NodeId| nested.contains(&model.node(*id).name);
    let read_outside = model.layers().iter().filter(|n| !nested.contains(&n.name)).flat_map(|n| n.inbound.iter()).find(|id| inside(id));
    read_outside.or_else(|| model.outputs().iter().find(|id| inside(id))).copied().expect("a nested model's output is used")
}

/// A nested model's `position`th input layer name (as its file named it).
fn nested_input_name(nested: &NestedModel, position: usize) -> String {
    nested.input_names.get(position).cloned().unwrap_or_else(|| format!("input_{}", position + 1))
}

/// A nested model as one entry of its parent's `layers`: its class, its own config, its call.
fn nested_entry(model: &Model, nested: &NestedModel, keras: KerasVersion) -> Value {
    let body = model_body(model, Some(nested), keras);
    let parent = nested.parent_path();
    let inputs: Vec<NodeId> = nested_call_inputs(model, nested);
    let kwargs = match nested.call_training {
        Some(training) => json!({ "training": training }),
        None => json!({}),
    };
    let class = nested.class_name.as_str();
    match keras {
        KerasVersion::Keras2 => {
            let inbound: Vec<Value> = inputs
                .iter()
                .map(|id| {
                    let (name, node_index) = reference(model, parent, *id, keras);
                    json!([name, node_index, 0, kwargs])
                })
                .collect();
            json!({ "class_name": class, "config": body, "name": nested.name(), "inbound_nodes": [inbound] })
        }
        KerasVersion::Keras3 => {
            let tensors: Vec<Value> = inputs.iter().map(|id| keras_tensor(model, parent, *id)).collect();
            let args = if tensors.len() == 1 { json!([tensors[0]]) } else { json!([tensors]) };
            let shapes: Vec<Value> = inputs.iter().map(|id| batch_shape(&model.node(*id).output_shape)).collect();
            let mut body = body;
            if class == "Sequential" {
                body["build_input_shape"] = shapes.first().cloned().unwrap_or(Value::Null);
            }
            json!({
                "module": if class == "Sequential" { "keras.src.models.sequential" } else { "keras.src.models.functional" },
                "class_name": class,
                "config": body,
                "registered_name": class,
                "build_config": { "input_shape": if shapes.len() == 1 { shapes[0].clone() } else { json!(shapes) } },
                "name": nested.name(),
                "inbound_nodes": [{ "args": args, "kwargs": kwargs }],
            })
        }
    }
}

/// Keras 3's record of a tensor a layer of the model at `scope` takes: layer `id`'s output.
fn keras_tensor(model: &Model, scope: &str, id: NodeId) -> Value {
    let (name, node_index) = reference(model, scope, id, KerasVersion::Keras3);
    json!({
        "class_name": "__keras_tensor__",
        "config": { "shape": batch_shape(&model.node(id).output_shape), "dtype": "float32", "keras_history": [name, node_index, 0] }
    })
}

/// An `InputLayer` entry called `name`.
fn input_entry(name: &str, input: &InputLayer, keras: KerasVersion) -> Value {
    let mut config = match keras {
        KerasVersion::Keras2 => input.keras_config(),
        KerasVersion::Keras3 => input.keras3_config(),
    };
    config["name"] = json!(name);
    match keras {
        KerasVersion::Keras2 => json!({ "class_name": "InputLayer", "config": config, "name": name, "inbound_nodes": [] }),
        KerasVersion::Keras3 => json!({
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": config,
            "registered_name": null,
            "name": name,
            "inbound_nodes": [],
        }),
    }
}

/// One entry of the `layers` list of the model at `scope`.
fn layer_entry(model: &Model, node: &Node, scope: &str, keras: KerasVersion) -> Value {
    let class = node.layer.class_name();
    let name = local_name(scope, &node.name);
    let mut config = match keras {
        KerasVersion::Keras2 => node.layer.keras_config(),
        KerasVersion::Keras3 => node.layer.keras3_config(),
    };
    let map = config.as_object_mut().expect("layer configs are objects");
    map.insert("name".into(), json!(name));
    // InputLayer's constructor takes no `trainable` (and carries its own dtype).
    if class != "InputLayer" {
        map.insert("trainable".into(), json!(node.trainable));
        map.insert("dtype".into(), json!("float32"));
    }
    // The call's own `training=`, where it is not what the layer inherits.
    let kwargs = match node.call_training {
        Some(training) if node.call_training != inherited_training(model.nested_models(), scope) => json!({ "training": training }),
        _ => json!({}),
    };
    match keras {
        KerasVersion::Keras2 => {
            let inbound: Vec<Value> = node
                .inbound
                .iter()
                .map(|id| {
                    let (input, node_index) = reference(model, scope, *id, keras);
                    json!([input, node_index, 0, kwargs])
                })
                .collect();
            json!({
                "class_name": class,
                "config": config,
                "name": name,
                "inbound_nodes": if inbound.is_empty() { json!([]) } else { json!([inbound]) },
            })
        }
        KerasVersion::Keras3 => {
            let inputs: Vec<Value> = node.inbound.iter().map(|id| keras_tensor(model, scope, *id)).collect();
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
                "name": name,
                "inbound_nodes": args.map_or(json!([]), |args| json!([{ "args": args, "kwargs": kwargs }])),
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
