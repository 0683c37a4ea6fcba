//! Bottleneck features (the lecture's "precompute the frozen network's activations once and save
//! them to disk"): when everything below the new head is frozen and nothing is augmented, the
//! base gives the same features for an image in every epoch, so they are computed once, cached
//! in a file whose name is a fingerprint of the base's weights, the preprocessing and the data,
//! and the head alone is trained on them — many epochs in seconds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tch::{Device, Tensor};

use super::data_parallel::DataParallel;
use super::fit::Stopped;
use crate::data::dataset::Dataset;
use crate::data::loader::Loading;
use crate::graph::{GraphBuilder, Model};
use crate::io::npy::{read_npy, write_npy};
use crate::layers::activation::Activation;
use crate::layers::autocast::Precision;
use crate::layers::dense::dense;
use crate::layers::reshape::Dropout;

/// A SHA-256 over everything that decides a cache file's contents, stable across runs and
/// Rust versions (unlike std's hasher); named by its first 64 bits.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint(Sha256);

impl Fingerprint {
    pub fn add(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    pub fn add_str(&mut self, text: &str) -> &mut Self {
        self.add(text.as_bytes()).add(&[0])
    }

    pub fn hex(&self) -> String {
        self.0.clone().finalize()[..8].iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Fingerprint of the layers `pool_layer` depends on: names, classes, configurations and every
/// weight's values — a base that changes in any of these gets a different cache file.
pub fn base_fingerprint(model: &Model, pool_layer: &str) -> Result<Fingerprint> {
    let needed = model.feeds(model.layer_id(pool_layer)?);
    let mut fingerprint = Fingerprint::default();
    for (node, _) in model.layers().iter().zip(&needed).filter(|(_, &needed)| needed) {
        fingerprint.add_str(&node.name).add_str(node.layer.class_name()).add_str(&node.layer.keras_config().to_string());
        for weight in node.layer.weights() {
            let values = weight.tensor.to_device(Device::Cpu).to_kind(tch::Kind::Float).contiguous().flatten(0, -1);
            let floats = Vec::<f32>::try_from(&values).context("reading a weight for the fingerprint")?;
            let bytes: Vec<u8> = floats.iter().flat_map(|v| v.to_le_bytes()).collect();
            fingerprint.add_str(weight.name).add(&bytes);
        }
    }
    Ok(fingerprint)
}

/// `pool_layer`'s output for every input of `data`, in order, in inference mode, batch by batch,
/// on CPU, through the same float32 inference rewrite as the `features` command (BatchNorm
/// folded into its convolution). Stops between batches when `interrupt` is set (Ctrl-C: the
/// features of a large dataset can take minutes).
pub fn compute_features(
    model: &Model,
    pool_layer: &str,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
    interrupt: &AtomicBool,
) -> Result<Tensor> {
    let inference = model.for_inference(Precision::Fp32);
    // One output tensor, filled batch by batch: thousands of small per-batch tensors kept
    // until a final concatenation would scatter over the heap between the decoded images.
    let mut features: Option<Tensor> = None;
    let mut start = 0;
    for batch in data.batches(None, batch_size.max(1) as usize, 0, loading) {
        if interrupt.load(Ordering::SeqCst) {
            return Err(Stopped::Interrupted { checkpoint: None }.into());
        }
        let x = batch?.0.to_device(model.device());
        let out = inference.activations(&[&x], &[pool_layer])?.remove(0).to_device(Device::Cpu);
        let rows = out.size()[0];
        let all = features.get_or_insert_with(|| {
            let mut shape = out.size();
            shape[0] = data.len() as i64;
            Tensor::empty(shape.as_slice(), (out.kind(), Device::Cpu))
        });
        tch::no_grad(|| all.narrow(0, start, rows).copy_(&out));
        start += rows;
    }
    match features {
        Some(features) => Ok(features),
        None => bail!("no samples to compute features for"),
    }
}

/// The features in `cache_dir/features-<key>.npy`, computed and written (atomically) when the
/// file does not exist. Returns the features, the file and whether it was reused.
/// In a data-parallel job (`parallel`) every rank reads the cache only if every rank finds it
/// (`compute` is then a collective, run by all), and rank 0 alone writes it.
pub fn cached_features(
    cache_dir: &Path,
    key: &str,
    parallel: Option<&DataParallel>,
    compute: impl FnOnce() -> Result<Tensor>,
) -> Result<(Tensor, PathBuf, bool)> {
    let path = cache_dir.join(format!("features-{key}.npy"));
    let found = match parallel {
        Some(parallel) => parallel.all(path.exists())?,
        None => path.exists(),
    };
    if found {
        return Ok((read_npy(&path)?, path, true));
    }
    let features = compute()?;
    if parallel.is_none_or(DataParallel::is_chief) {
        std::fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
        write_npy(&path, &features)?;
    }
    if let Some(parallel) = parallel {
        parallel.group().barrier()?;
    }
    Ok((features, path, false))
}

/// [`compute_features`] shared out between the ranks of a data-parallel job: each computes its
/// contiguous share, and every rank gets them all, in order.
pub fn compute_features_in_parallel(
    model: &Model,
    pool_layer: &str,
    data: &Dataset,
    batch_size: i64,
    loading: &Loading,
    parallel: &DataParallel,
    interrupt: &AtomicBool,
) -> Result<Tensor> {
    let share: Vec<usize> = parallel.slice(data.len()).collect();
    let mine = if share.is_empty() {
        None
    } else {
        Some(compute_features(model, pool_layer, &data.select(&share), batch_size, loading, interrupt)?)
    };
    let row_shape = model.layer(pool_layer)?.output_shape.clone();
    Ok(parallel.gather_rows(data.len(), &row_shape, mine.as_ref(), &vec![true; share.len()])?.0)
}

/// The head alone, on features: `Input(features) -> [Dropout] -> Dense(softmax)`, with the Dense
/// named and initialised as `model`'s `dense_layer`, so training it trains that layer.
pub fn head_model(model: &Model, dense_layer: &str, dropout: f64, device: Device) -> Result<Model> {
    let node = model.layer(dense_layer)?;
    let features = model.node(node.inbound[0]).output_shape.clone();
    let classes = node.output_shape[0];
    let mut g = GraphBuilder::new(&format!("{}_head", model.name), device);
    let mut x = g.input(Some("features"), &features)?;
    if dropout > 0.0 {
        x = g.add(None, Dropout { rate: dropout }, &[x])?;
    }
    let x = g.dense(Some(dense_layer), dense(classes).activation(Activation::Softmax), x)?;
    let head = g.finish(&[x])?;
    copy_dense(model, &head, dense_layer)?;
    Ok(head)
}

/// Copy a Dense layer's kernel and bias between two models that both have it.
pub fn copy_dense(from: &Model, to: &Model, layer: &str) -> Result<()> {
    for weight in ["kernel", "bias"] {
        to.set_keras_weight(layer, weight, &from.keras_weight(layer, weight)?)?;
    }
    Ok(())
}
