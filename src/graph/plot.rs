//! Keras's `plot_model`: the functional graph as Graphviz DOT — one record per layer labelled
//! `name: Class` (with `show_shapes`, its input and output shapes below, as tf.keras's
//! `model_to_dot` draws them), an edge per connection, so branches and merges show — and
//! rendered to SVG or PNG by Graphviz's `dot` when it is installed.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{keras_shape, Model};
use crate::io::atomic::{write_atomically, write_bytes_atomically};

/// The DOT source of `model` (top to bottom, like Keras's default `rankdir='TB'`).
pub fn model_to_dot(model: &Model, show_shapes: bool) -> String {
    let mut dot = String::from("digraph G {\n  graph [rankdir=TB, dpi=96];\n  node [shape=record, fontname=\"Helvetica\"];\n");
    for (i, node) in model.layers().iter().enumerate() {
        let title = escape(&format!("{}: {}", node.name, node.layer.class_name()));
        let label = if show_shapes {
            let inputs: Vec<String> = if node.inbound.is_empty() {
                vec![keras_shape(&node.output_shape)]
            } else {
                node.inbound.iter().map(|id| keras_shape(&model.node(*id).output_shape)).collect()
            };
            let inputs = if inputs.len() == 1 { inputs[0].clone() } else { format!("[{}]", inputs.join(", ")) };
            format!("{{{title}}}|{{input:|output:}}|{{{{{}}}|{{{}}}}}", escape(&inputs), escape(&keras_shape(&node.output_shape)))
        } else {
            title
        };
        dot.push_str(&format!("  n{i} [label=\"{label}\"];\n"));
    }
    for (i, node) in model.layers().iter().enumerate() {
        for id in &node.inbound {
            dot.push_str(&format!("  n{} -> n{i};\n", id.0));
        }
    }
    dot.push_str("}\n");
    dot
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
pub fn plot_model(model: &Model, to_file: &Path, show_shapes: bool) -> Result<()> {
    let dot = model_to_dot(model, show_shapes);
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
