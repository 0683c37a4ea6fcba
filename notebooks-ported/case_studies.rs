//! The lecture's case studies (fourth seed): LeNet-5, AlexNet, VGG-16, the Inception module and
//! a GoogLeNet built from it — their Keras summaries — and the multiply counts the lecture works
//! out for the 1×1 "bottleneck" convolution.
//!
//!     cargo run --release --example case_studies

use anyhow::Result;
use tch::Device;

use keras_tch::graph::summary::{summary, thousands};
use keras_tch::models::classic::{alexnet, conv_multiplies, googlenet, inception_module_model, lenet5, vgg16, LECTURE_MODULE};

fn main() -> Result<()> {
    let device = Device::Cpu;
    for (title, model) in [
        ("LeNet-5 (1998): about 60 thousand parameters", lenet5(device)?),
        ("AlexNet (2012): about 60 million parameters", alexnet(device)?),
        ("VGG-16 (2015): about 138 million parameters", vgg16(device)?),
        ("The Inception module of the lecture's example", inception_module_model(device)?),
        ("GoogLeNet: Inception modules stacked", googlenet(device)?),
    ] {
        println!("## {title}");
        print!("{}", summary(&model));
        println!();
    }

    // ## The problem of computational cost, and the bottleneck layer
    let direct = conv_multiplies(28, 28, 32, 5, 192);
    println!("5x5 same conv, 28x28x192 -> 28x28x32: {} multiplications (about 120 million)", thousands(direct));
    let reduce = conv_multiplies(28, 28, LECTURE_MODULE.reduce5, 1, 192);
    let expand = conv_multiplies(28, 28, 32, 5, LECTURE_MODULE.reduce5);
    println!(
        "with a 1x1 bottleneck to 16 channels: {} + {} = {} multiplications (about 12.4 million)",
        thousands(reduce),
        thousands(expand),
        thousands(reduce + expand)
    );
    Ok(())
}
