//! `BatchNormalization(synchronized=True)` in training: each replica of a data-parallel job
//! normalises with the statistics of the *global* batch, as Keras computes them under a
//! distribution strategy (the sums and counts all-reduced across the replicas, then the mean and
//! variance) — so N replicas compute what one process computes on the whole batch, gradients
//! included (they flow back through the all-reduce to every replica's samples).
//!
//! The mean is summed first and the squared deviations from it second (two small all-reduces),
//! which keeps the variance as accurate as one process's; the moving statistics are updated as
//! the unsynchronized layer updates them (the variance with Bessel's correction over the global
//! count, as tf.keras's fused kernel and torch do).

use tch::{Kind, Tensor};

/// Sums a tensor over the replicas of a data-parallel job, differentiably. A failed collective
/// returns `None`: the implementation keeps the error for the training loop, which abandons the
/// step; the layer meanwhile goes on with its replica's own statistics.
pub trait ReplicaSum: Send + Sync {
    fn sum(&self, tensor: &Tensor) -> Option<Tensor>;
}

/// What the synchronized forward pass needs of the layer.
pub struct BatchNormParts<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub moving_mean: &'a Tensor,
    pub moving_variance: &'a Tensor,
    /// Keras's momentum: the weight of the old moving value.
    pub momentum: f64,
    pub epsilon: f64,
}

/// The training forward pass on `x` (channels on dim 1) normalised with the global batch's
/// statistics, updating the moving statistics; `None` when a collective failed.
pub fn synchronized_forward(x: &Tensor, parts: &BatchNormParts, replicas: &dyn ReplicaSum) -> Option<Tensor> {
    let channels = parts.gamma.size()[0];
    let reduced: Vec<i64> = (0..x.dim() as i64).filter(|&dim| dim != 1).collect();
    let mut broadcast = vec![1; x.dim()];
    broadcast[1] = channels;
    let values = x.to_kind(Kind::Float);
    let local_count = if channels == 0 { 0 } else { x.numel() as i64 / channels };

    let sums = Tensor::cat(&[values.sum_dim_intlist(reduced.as_slice(), false, Kind::Float), Tensor::from_slice(&[local_count as f32])], 0);
    let sums = replicas.sum(&sums)?;
    let count = sums.double_value(&[channels]);
    let mean = sums.narrow(0, 0, channels) / count.max(1.0);
    let centered = &values - mean.view(broadcast.as_slice());
    let squares = replicas.sum(&centered.square().sum_dim_intlist(reduced.as_slice(), false, Kind::Float))?;
    let variance = &squares / count.max(1.0);

    let scale = (&variance + parts.epsilon).rsqrt() * parts.gamma;
    let normalised = centered * scale.view(broadcast.as_slice()) + parts.beta.view(broadcast.as_slice());
    tch::no_grad(|| {
        let unbiased = if count > 1.0 { &variance * (count / (count - 1.0)) } else { variance.shallow_clone() };
        let update = |moving: &Tensor, batch: &Tensor| {
            let new = moving * parts.momentum + batch.detach() * (1.0 - parts.momentum);
            moving.shallow_clone().copy_(&new);
        };
        update(parts.moving_mean, &mean);
        update(parts.moving_variance, &unbiased);
    });
    Some(normalised.to_kind(x.kind()))
}
