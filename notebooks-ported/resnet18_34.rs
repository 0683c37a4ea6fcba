//! The TF2 ResNet18/34 tutorial (third seed): `BasicBlock`, `build_resblock`, `ResNet`,
//! `resnet18()` / `resnet34()`, `model.build(input_shape=(None, 224, 224, 3))` and
//! `model.summary()` for both — totals 12,053,608 and 22,735,912, as Keras counts them.
//!
//!     cargo run --release --example resnet18_34
//!
//! The seed's model is subclassed, so Keras's summary lists its nested `Sequential`s as rows
//! (`multiple` where a layer has no single output shape); this port builds the same layers as a
//! flat functional graph, so it prints both: the tutorial's table, as tf.keras prints it, then
//! the flat one with every layer and its shape (names: `stem_conv`, `layer2_block1_conv1`, …,
//! `fc`). The tutorial's `model.save_weights` files load onto these graphs, and weights saved
//! here load into the tutorial's classes (see `keras_tch::io::subclassed_resnet`).

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use keras_tch::graph::summary::summary;
use keras_tch::graph::tuple;
use keras_tch::io::subclassed_resnet::TutorialResnet;
use keras_tch::models::{Arch, ArchOptions};

fn main() -> Result<()> {
    keras_tch::runtime::keep_freed_memory();
    for (title, arch) in [("resnet18()", Arch::Resnet18), ("resnet34()", Arch::Resnet34)] {
        // model = resnet18(); model.build(input_shape=(None, 224, 224, 3)); model.summary()
        println!("# {title}");
        let model = arch.build(&ArchOptions { input_shape: Some([224, 224, 3]), ..Default::default() }, Device::cuda_if_available())?;
        let tutorial = TutorialResnet::of(&model).context("the tutorial's model")?;
        print!("{}", tutorial.summary(&model)?);
        println!("# the same layers as keras-tch's flat graph");
        print!("{}", summary(&model));
        // A forward pass on a random batch, as the tutorial's training loop would run it.
        let x = Tensor::randn([2, 224, 224, 3], (Kind::Float, model.device()));
        println!("output shape for a batch of 2: {}\n", tuple(&model.predict(&x)?.size()));
    }
    Ok(())
}
