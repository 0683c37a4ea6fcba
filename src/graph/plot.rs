//! Keras's `plot_model`: the functional graph as Graphviz DOT — one record per layer labelled
//! `name: Class` (with `show_shapes`, its input and output shapes below, as tf.keras's
//! `model_to_dot` draws them), an edge per connection, so branches and merges show — and
//! rendered to SVG or PNG by Graphviz's `dot` when it is installed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::nesting::{local_name, placement, Placement, PATH_SEPARATOR};
use super::{keras_shape, Model};
use crate::io::atomic::{write_atomically, write_bytes_atomically};

/// `plot_model`'s options that keras-tch draws.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlotOptions {
    /// Each layer's input and output shapes below its name (`show_shapes=True`).
    pub show_shapes: bool,
    /// The layers of models nested as layers, inside a dashed box named after the model,
    /// instead of one node for it (`expand_nested=True`).
    pub expand_nested: bool,
}

/// The DOT source of `model` (top to bottom, like Keras's default `rankdir='TB'`). A model
/// nested as a layer is one node (`resnet50: Functional`), as `plot_model` draws it, unless
/// `expand_nested`.
pub fn model_to_dot(model: &Model, options: PlotOptions) -> String {
    let (units, unit_of) = units(model, options.expand_nested);
    let mut dot = String::from("digraph G {\n  graph [rankdir=TB, dpi=96];\n  node [shape=record, fontname=\"Helvetica\"];\n");
    write_scope(&mut dot, model, &units, "", 1, options.show_shapes);
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, node) in model.layers().iter().enumerate() {
        for id in &node.inbound {
            let edge = (unit_of[id.0], unit_of[i]);
            if edge.0 != edge.1 && !edges.contains(&edge) {
                edges.push(edge);
            }
        }
    }
    for (from, to) in edges {
        dot.push_str(&format!("  n{from} -> n{to};\n"));
    }
    dot.push_str("}\n");
    dot
}

/// One drawn node: a layer, or a nested model drawn whole.
struct Unit {
    title: String,
    /// The layers it reads from outside it.
    inputs: Vec<usize>,
    output_shape: Vec<i64>,
    /// The path of the nested model whose box it is drawn in (`""`: none).
    scope: String,
}

/// The drawn nodes, and which one each layer is part of.
fn units(model: &Model, expand_nested: bool) -> (Vec<Unit>, Vec<usize>) {
    let mut units: Vec<Unit> = Vec::new();
    let mut unit_of: Vec<usize> = Vec::with_capacity(model.layers().len());
    let mut unit_of_nested: Vec<(&str, usize)> = Vec::new();
    for node in model.layers() {
        let collapsed = match placement(model.nested_models(), "", &node.name) {
            Placement::In(nested) if !expand_nested => Some(nested),
            _ => None,
        };
        let existing = collapsed.and_then(|nested| unit_of_nested.iter().find(|(path, _)| *path == nested.path).map(|&(_, u)| u));
        let u = existing.unwrap_or_else(|| {
            let (title, scope) = match collapsed {
                Some(nested) => (format!("{}: {}", nested.name(), nested.class_name), String::new()),
                None => {
                    let scope = node.name.rsplit_once(PATH_SEPARATOR).map_or("", |(path, _)| path);
                    (format!("{}: {}", local_name(scope, &node.name), node.layer.class_name()), scope.to_string())
                }
            };
            if let Some(nested) = collapsed {
                unit_of_nested.push((&nested.path, units.len()));
            }
            units.push(Unit { title, inputs: Vec::new(), output_shape: Vec::new(), scope });
            units.len() - 1
        });
        unit_of.push(u);
        // A nested model's inputs are what its layers read from outside it (each once); its
        // output is its last layer's.
        for id in &node.inbound {
            if unit_of[id.0] != u && !(collapsed.is_some() && units[u].inputs.contains(&id.0)) {
                units[u].inputs.push(id.0);
            }
        }
        units[u].output_shape = node.output_shape.clone();
    }
    (units, unit_of)
}

/// The nodes drawn in the box of the nested model at `scope`, then the boxes of the models
/// nested in it.
fn write_scope(dot: &mut String, model: &Model, units: &[Unit], scope: &str, depth: usize, show_shapes: bool) {
    let indent = "  ".repeat(depth);
    for (u, unit) in units.iter().enumerate().filter(|(_, unit)| unit.scope == scope) {
        let title = escape(&unit.title);
        let label = if show_shapes {
            // An input layer shows its own shape as its input, as Keras draws it.
            let inputs: Vec<String> = if unit.inputs.is_empty() {
                vec![keras_shape(&unit.output_shape)]
            } else {
                unit.inputs.iter().map(|&layer| keras_shape(&model.layers()[layer].output_shape)).collect()
            };
            let inputs = if inputs.len() == 1 { inputs[0].clone() } else { format!("[{}]", inputs.join(", ")) };
            format!("{{{title}}}|{{input:|output:}}|{{{{{}}}|{{{}}}}}", escape(&inputs), escape(&keras_shape(&unit.output_shape)))
        } else {
            title
        };
        dot.push_str(&format!("{indent}n{u} [label=\"{label}\"];\n"));
    }
    let drawn_inside =
        |path: &str| units.iter().any(|unit| unit.scope == path || unit.scope.starts_with(&format!("{path}{PATH_SEPARATOR}")));
    for (k, nested) in model.nested_models().iter().enumerate().filter(|(_, n)| n.parent_path() == scope && drawn_inside(&n.path)) {
        dot.push_str(&format!(
            "{indent}subgraph cluster_{k} {{\n{indent}  label=\"{}\";\n{indent}  style=dashed;\n",
            escape(nested.name())
        ));
        write_scope(dot, model, units, &nested.path, depth + 1, show_shapes);
        dot.push_str(&format!("{indent}}}\n"));
    }
}

/// Record labels treat these as structure; layer names and shapes must show them literally.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '{' | '}' | '|' | '<' | '>' | '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// `plot_model(model, to_file)`: `.dot` writes the source; `.svg` / `.png` (or any other format
/// `dot -T` knows) renders it with Graphviz. Without Graphviz, the DOT source is written next to
/// the target and the error says how to install it.
pub fn plot_model(model: &Model, to_file: &Path, options: PlotOptions) -> Result<()> {
    let dot = model_to_dot(model, options);
    let format = to_file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if format == "dot" || format == "gv" {
        return write_bytes_atomically(to_file, dot.as_bytes());
    }
    if format.is_empty() {
        bail!("{}: give the file an extension (.svg, .png or .dot) to choose the format", to_file.display());
    }
    let source = to_file.with_extension("dot");
    if Command::new("dot").arg("-V").output().is_err() {
        write_bytes_atomically(&source, dot.as_bytes())?;
        bail!(
            "Graphviz's `dot` is not installed, so {} cannot be rendered (apt-get install graphviz, or run \
             scripts/setup.sh); the DOT source is in {}",
            to_file.display(),
            source.display()
        );
    }
    write_atomically(to_file, |temp| {
        let mut child = Command::new("dot")
            .arg(format!("-T{format}"))
            .arg("-o")
            .arg(temp)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting Graphviz's dot")?;
        std::io::Write::write_all(child.stdin.as_mut().expect("piped"), dot.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("Graphviz's dot could not render {format}: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    })
}
