//! `plot_model`: the DOT graph has a record per layer and an edge per connection (so a residual
//! block's branch and merge show), and Graphviz renders it.

mod common;

use common::scratch_dir;
use keras_tch::graph::plot::{model_to_dot, plot_model, PlotOptions};
use keras_tch::models::course::block_model;
use tch::Device;

const SHAPES: PlotOptions = PlotOptions { show_shapes: true, expand_nested: false };

#[test]
fn dot_has_every_layer_and_connection() {
    let model = block_model([4, 4, 6], true, Device::Cpu).unwrap();
    let dot = model_to_dot(&model, SHAPES);
    let edges: usize = model.layers().iter().map(|n| n.inbound.len()).sum();
    assert_eq!(dot.matches(" -> ").count(), edges);
    assert_eq!(dot.matches("[label=").count(), model.layers().len());
    let add = model.layers().iter().position(|n| n.layer.class_name() == "Add").expect("the block's merge");
    assert_eq!(dot.matches(&format!(" -> n{add};")).count(), 2, "the shortcut and the main path meet at the Add");
    assert!(dot.contains("{input:|output:}"), "show_shapes rows");
    assert!(dot.contains("(None, 4, 4, 6)"));
}

#[test]
fn graphviz_renders_svg_and_png() {
    let model = block_model([4, 4, 6], false, Device::Cpu).unwrap();
    let dir = scratch_dir("plot");
    plot_model(&model, &dir.join("block.svg"), PlotOptions::default()).unwrap();
    let svg = std::fs::read_to_string(dir.join("block.svg")).unwrap();
    assert!(svg.contains("<svg"), "an SVG document");
    let first_conv = model.layers().iter().find(|n| n.layer.class_name() == "Conv2D").unwrap();
    assert!(svg.contains(&first_conv.name), "layer names drawn");
    plot_model(&model, &dir.join("block.png"), SHAPES).unwrap();
    assert!(std::fs::read(dir.join("block.png")).unwrap().starts_with(b"\x89PNG"));
    plot_model(&model, &dir.join("block.dot"), SHAPES).unwrap();
    assert!(std::fs::read_to_string(dir.join("block.dot")).unwrap().starts_with("digraph G {"));
    let message = format!("{:#}", plot_model(&model, &dir.join("block"), SHAPES).unwrap_err());
    assert!(message.contains("give the file an extension"), "{message}");
}

/// `keras-tch plot --arch resnet50-course --to model.svg`: all 177 layers drawn; without
/// Graphviz on the PATH, the DOT source instead and an error saying how to install it.
#[test]
fn plot_command_draws_the_course_resnet50() {
    let dir = scratch_dir("plot-command");
    let svg = dir.join("model.svg");
    let plot = |path: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
            .args(["plot", "--arch", "resnet50-course", "--to"])
            .arg(&svg)
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let output = plot(&std::env::var("PATH").unwrap());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(text.matches("class=\"node\"").count(), 177, "one node per layer");

    std::fs::remove_file(&svg).unwrap();
    let output = plot("/nonexistent");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Graphviz's `dot` is not installed"), "{stderr}");
    assert!(std::fs::read_to_string(dir.join("model.dot")).unwrap().starts_with("digraph G {"));
    assert!(!svg.exists());
}

/// A model nested as a layer (the transfer-learning guide's ResNet50 base and augmentation
/// block) is one node, as `plot_model` draws it, with its input and output shapes; with
/// `expand_nested` its layers are drawn inside a dashed box named after it.
#[test]
fn nested_models_are_one_node_or_a_box() {
    let Some(fixture) = common::keras_fixture("nested_augmented") else { return };
    let model = keras_tch::io::load_model(&fixture.join("model.h5"), Device::Cpu).unwrap();
    let dot = model_to_dot(&model, SHAPES);
    // input, data_augmentation, rescaling, resnet50, pooling, dropout, dense: a chain.
    assert_eq!(dot.matches("[label=").count(), 7, "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 6, "{dot}");
    assert!(dot.contains("resnet50: Functional}|{input:|output:}|{{(None, 64, 64, 3)}|{(None, 2, 2, 2048)}}"), "{dot}");
    assert!(dot.contains("data_augmentation: Sequential}"), "{dot}");
    assert!(!dot.contains("cluster"), "{dot}");

    let expanded = model_to_dot(&model, PlotOptions { expand_nested: true, ..SHAPES });
    assert_eq!(expanded.matches("[label=").count(), model.layers().len(), "{expanded}");
    let edges: usize = model.layers().iter().map(|n| n.inbound.len()).sum();
    assert_eq!(expanded.matches(" -> ").count(), edges, "{expanded}");
    assert_eq!(expanded.matches("subgraph cluster_").count(), 2, "{expanded}");
    assert!(expanded.contains("label=\"resnet50\";") && expanded.contains("label=\"data_augmentation\";"), "{expanded}");
    assert!(expanded.contains("[label=\"{conv1_conv: Conv2D}"), "inner layers by their own names: {expanded}");
}
