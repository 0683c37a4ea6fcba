//! The Happy House `HappyModel` (the fourth seed's Keras tutorial), the suggested outline:
//! ZeroPadding2D(3) → `conv0` 7×7×32 → `bn0` → relu → `max_pool` 2×2 → Flatten → Dense(1, sigmoid) `fc`.

use anyhow::Result;
use tch::Device;

use crate::graph::{GraphBuilder, Model};
use crate::layers::activation::Activation;
use crate::layers::batch_norm::batch_norm;
use crate::layers::conv::conv2d;
use crate::layers::dense::dense;
use crate::layers::padding::ZeroPadding2D;
use crate::layers::pooling::max_pool;
use crate::layers::reshape::Flatten;

pub fn happy_model(input_shape: [i64; 3], device: Device) -> Result<Model> {
    let mut g = GraphBuilder::new("HappyModel", device);
    let input = g.input(None, &input_shape)?;
    let x = g.add(None, ZeroPadding2D::symmetric(3), &[input])?;
    let x = g.conv2d(Some("conv0"), conv2d(32, 7), x)?;
    let x = g.batch_norm(Some("bn0"), batch_norm().axis(3), x)?;
    let x = g.add(None, Activation::Relu, &[x])?;
    let x = g.add(Some("max_pool"), max_pool(2), &[x])?;
    let x = g.add(None, Flatten, &[x])?;
    let out = g.dense(Some("fc"), dense(1).activation(Activation::Sigmoid), x)?;
    g.finish(&[out])
}
