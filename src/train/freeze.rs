//! Freezing layers by their Keras names, as a Keras user writes `layer.trainable = False` in a
//! loop over `model.layers`: everything up to a layer, from a layer on, by name pattern, or the
//! first N stages of a ResNet. A frozen layer's weights leave the optimizer and a frozen
//! BatchNorm runs in inference mode, so its moving statistics stay as they are (Keras ≥ 2.1.3).

use anyhow::{bail, Result};

use crate::graph::nesting::own_name;
use crate::graph::Model;

/// Which layers to freeze; the rules add up (a layer any rule selects is frozen).
#[derive(Debug, Clone, Default)]
pub struct FreezeSpec {
    /// Everything up to and including this layer (in `model.layers` order).
    pub until: Option<String>,
    /// Everything before this layer (it and the layers after it stay trainable).
    pub trainable_from: Option<String>,
    /// Glob patterns (`*`, `?`) on layer names; a pattern without wildcards is a prefix.
    pub patterns: Vec<String>,
    /// The stem (stage 1) and stages 2..=N of a ResNet, in any of its naming schemes.
    pub stages: Option<usize>,
    /// Every BatchNormalization layer, so it runs in inference mode on its pretrained statistics
    /// while the layers around it train (Keras's fine-tuning advice).
    pub batch_norm: bool,
}

impl FreezeSpec {
    pub fn is_empty(&self) -> bool {
        self.until.is_none() && self.trainable_from.is_none() && self.patterns.is_empty() && self.stages.is_none() && !self.batch_norm
    }
}

/// Freeze what `spec` selects; returns the frozen layers' names in order. Unknown layer names,
/// patterns that match nothing and stage counts on a model without stages are errors, before
/// anything changes.
pub fn freeze(model: &mut Model, spec: &FreezeSpec) -> Result<Vec<String>> {
    let names: Vec<String> = model.layers().iter().map(|n| n.name.clone()).collect();
    let mut selected = vec![false; names.len()];
    if let Some(last) = &spec.until {
        let end = position(&names, last)?;
        selected[..=end].iter_mut().for_each(|s| *s = true);
    }
    if let Some(first) = &spec.trainable_from {
        let end = position(&names, first)?;
        selected[..end].iter_mut().for_each(|s| *s = true);
    }
    for pattern in &spec.patterns {
        let mut matched = false;
        for (i, name) in names.iter().enumerate() {
            if matches_pattern(pattern, name) {
                selected[i] = true;
                matched = true;
            }
        }
        if !matched {
            bail!("freeze pattern '{pattern}' matches no layer of model '{}' (layers are named like '{}')", model.name, sample(&names));
        }
    }
    if let Some(stages) = spec.stages {
        let Some(staged) = resnet_stages(&names) else {
            bail!("freezing by stage applies to ResNets; no layer of model '{}' is named like a residual block", model.name);
        };
        for (i, stage) in staged.iter().enumerate() {
            if stage.is_some_and(|s| s <= stages) {
                selected[i] = true;
            }
        }
    }
    if spec.batch_norm {
        for (i, node) in model.layers().iter().enumerate() {
            if node.layer.class_name() == "BatchNormalization" {
                selected[i] = true;
            }
        }
    }
    let mut frozen = Vec::new();
    for (name, selected) in names.iter().zip(selected) {
        if selected && model.node(model.layer_id(name)?).layer.class_name() != "InputLayer" {
            model.set_trainable(name, false)?;
            frozen.push(name.clone());
        }
    }
    Ok(frozen)
}

/// The layer called `name`; or, inside a nested model, the one layer whose own name it is
/// (`conv4_block6_out` for `resnet50/conv4_block6_out`).
fn position(names: &[String], name: &str) -> Result<usize> {
    if let Some(i) = names.iter().position(|n| n == name) {
        return Ok(i);
    }
    let inner: Vec<usize> = (0..names.len()).filter(|&i| own_name(&names[i]) == name).collect();
    match inner[..] {
        [i] => Ok(i),
        [] => bail!("no layer named '{name}' (layers are named like '{}')", sample(names)),
        _ => bail!(
            "several nested layers are named '{name}': give the path ({})",
            inner.iter().map(|&i| names[i].as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A few names, for error messages.
fn sample(names: &[String]) -> String {
    names.iter().skip(1).take(4).cloned().collect::<Vec<_>>().join("', '")
}

/// Glob match with `*` (any run) and `?` (one character); without wildcards, a prefix match.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.starts_with(pattern);
    }
    fn glob(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|skip| glob(rest, &n[skip..])),
            Some(('?', rest)) => !n.is_empty() && glob(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && glob(rest, &n[1..]),
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    glob(&p, &n)
}

/// The ResNet stage of each of `layer_names` (1 = the stem, `None` for the head), or `None` when
/// the model has no residual blocks: a stem name such as `conv1` means stage 1 only in a ResNet
/// (AlexNet has a `conv1` too).
pub fn resnet_stages(layer_names: &[impl AsRef<str>]) -> Option<Vec<Option<usize>>> {
    let stages: Vec<Option<usize>> = layer_names.iter().map(|name| resnet_stage(name.as_ref())).collect();
    stages.iter().any(|stage| stage.is_some_and(|s| s > 1)).then_some(stages)
}

/// The ResNet stage a layer of a ResNet belongs to, from its name in any scheme this port
/// builds: Keras's `conv1_bn` / `conv3_block2_1_conv`, the course's and keras-applications'
/// `bn_conv1` / `res3b_branch2a` / `bn3b_branch2a`, the TF2 tutorial's `stem_bn` /
/// `layer2_block1_conv1`. Only for a model known to be a ResNet: see [`resnet_stages`].
fn resnet_stage(name: &str) -> Option<usize> {
    let name = own_name(name);
    let digit_after = |prefix: &str| name.strip_prefix(prefix)?.chars().next()?.to_digit(10).map(|d| d as usize);
    if ["conv1", "bn_conv1", "pool1", "stem_"].iter().any(|p| name.starts_with(p)) {
        return Some(1);
    }
    if name.starts_with("conv") && name.contains("_block") {
        return digit_after("conv");
    }
    if (name.starts_with("res") || name.starts_with("bn")) && name.contains("_branch") {
        return digit_after("res").or_else(|| digit_after("bn"));
    }
    if name.starts_with("layer") && name.contains("_block") {
        return digit_after("layer").map(|k| k + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_globs_or_prefixes() {
        assert!(matches_pattern("conv1*", "conv1_bn"));
        assert!(matches_pattern("res2*", "res2a_branch2a"));
        assert!(!matches_pattern("res2*", "bn2a_branch2a"));
        assert!(matches_pattern("conv4_block?_1_conv", "conv4_block3_1_conv"));
        assert!(matches_pattern("conv4_block", "conv4_block6_out"));
        assert!(!matches_pattern("conv4_block", "conv5_block1_out"));
    }

    #[test]
    fn stages_come_from_every_naming_scheme() {
        assert_eq!(resnet_stage("conv1_bn"), Some(1));
        assert_eq!(resnet_stage("bn_conv1"), Some(1));
        assert_eq!(resnet_stage("conv3_block2_1_conv"), Some(3));
        assert_eq!(resnet_stage("res4f_branch2c"), Some(4));
        assert_eq!(resnet_stage("bn5a_branch1"), Some(5));
        assert_eq!(resnet_stage("stem_conv"), Some(1));
        assert_eq!(resnet_stage("layer2_block1_conv1"), Some(3));
        assert_eq!(resnet_stage("fc1000"), None);
        assert_eq!(resnet_stage("avg_pool"), None);
    }

    #[test]
    fn a_stem_name_outside_a_resnet_is_no_stage() {
        assert_eq!(resnet_stages(&["conv1", "conv2", "fc6"]), None, "AlexNet's layers");
        assert_eq!(resnet_stages(&["conv1", "conv2_block1_1_conv", "fc"]), Some(vec![Some(1), Some(2), None]));
    }

    #[test]
    fn freezing_alexnet_by_stage_is_refused() {
        let mut model = crate::models::classic::alexnet(tch::Device::Cpu).unwrap();
        let spec = FreezeSpec { stages: Some(1), ..Default::default() };
        let error = freeze(&mut model, &spec).unwrap_err().to_string();
        assert!(error.contains("applies to ResNets"), "{error}");
        assert!(model.layers().iter().all(|n| n.trainable), "nothing was frozen");
    }
}
