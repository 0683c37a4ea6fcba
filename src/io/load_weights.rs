//! Loading stored weights onto a built model, by layer name, all-or-nothing.
//!
//! Like Keras's `load_weights(by_name=True)`, with two additions: ResNet50 checkpoints in the
//! other naming scheme are mapped (`res2a_branch2a` ↔ `conv2_block1_1_conv`, …) and the
//! BatchNorm epsilon becomes the one the file's architecture used; and every problem of a load is
//! reported at once. Strict by default (a missing layer, an extra layer or a wrong shape is an
//! error and the model is left unchanged); `skip_mismatch` loads what matches and reports the rest.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::{bail, Result};
use tch::no_grad;

use super::saved_weights::{FileLayout, SavedLayer, SavedWeight, SavedWeights};
use crate::graph::naming::{AutoNamer, KerasVersion};
use crate::graph::{keras_shape_of, tuple, Model};
use crate::models::names::resnet50_name_pairs;

/// Keras's epsilon for ResNet50's BatchNorm in each scheme.
const LEGACY_BN_EPSILON: f64 = 1e-3;
const KERAS_BN_EPSILON: f64 = 1.001e-5;

/// Which way a file's ResNet50 layer names were mapped onto the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeMapping {
    /// A keras-applications ≤ 1.0.8 file (`res2a_branch2a`) onto a Keras-named model.
    LegacyToKeras,
    /// A Keras ≥ 2.2.5 file (`conv2_block1_1_conv`) onto a keras-applications-named model.
    KerasToLegacy,
}

impl SchemeMapping {
    /// The BatchNorm epsilon of the *file's* architecture, which the weights were trained with.
    fn file_epsilon(self) -> f64 {
        match self {
            SchemeMapping::LegacyToKeras => LEGACY_BN_EPSILON,
            SchemeMapping::KerasToLegacy => KERAS_BN_EPSILON,
        }
    }
}

impl fmt::Display for SchemeMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemeMapping::LegacyToKeras => "keras-applications -> Keras",
            SchemeMapping::KerasToLegacy => "Keras -> keras-applications",
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Load the layers that match and report the others, instead of failing
    /// (Keras's `skip_mismatch=True`; e.g. a 1000-class checkpoint onto a 6-class head).
    pub skip_mismatch: bool,
    /// Accept weighted layers in the file that the model lacks (reported as unused), as Keras's
    /// `by_name=True` does — e.g. a checkpoint's classifier when loading `include_top=False`.
    pub ignore_extra_layers: bool,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Model layers left as they were, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Weighted layers of the file that no model layer took.
    pub unused: Vec<String>,
    /// Set when the file's ResNet50 names were mapped onto the model's other scheme.
    pub scheme_mapping: Option<SchemeMapping>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loaded {} layer(s)", self.loaded.len())?;
        if let Some(mapping) = self.scheme_mapping {
            write!(f, " (names mapped {mapping})")?;
        }
        for (layer, why) in &self.skipped {
            write!(f, "\n  skipped '{layer}': {why}")?;
        }
        if !self.unused.is_empty() {
            write!(f, "\n  not used from the file: {}", self.unused.join(", "))?;
        }
        Ok(())
    }
}

/// Load `saved` onto `model`.
pub fn apply_weights(model: &mut Model, saved: &SavedWeights, options: &LoadOptions) -> Result<LoadReport> {
    let file = saved.path.display().to_string();
    let weighted: Vec<usize> = (0..model.layers().len()).filter(|&i| !model.layers()[i].layer.weights().is_empty()).collect();
    let (lookup, scheme_mapping) = match_layers(model, &weighted, saved);
    let mut report = LoadReport { scheme_mapping, ..Default::default() };
    let mut problems = Vec::new();
    let mut plan: Vec<(usize, usize, &SavedWeight)> = Vec::new(); // (node, weight index, stored weight)
    let mut used: HashSet<&str> = HashSet::new();

    for &index in &weighted {
        let node = &model.layers()[index];
        let Some(stored) = lookup.get(&node.name).copied() else {
            let why = format!("the file has no layer '{}'", node.name);
            if options.skip_mismatch {
                report.skipped.push((node.name.clone(), why));
            } else {
                problems.push(format!("layer '{}' ({}): {why}", node.name, node.layer.class_name()));
            }
            continue;
        };
        used.insert(stored.name.as_str());
        match plan_layer(model, index, stored, saved.layout) {
            Ok(assignments) => {
                plan.extend(assignments);
                report.loaded.push(node.name.clone());
            }
            Err(why) if options.skip_mismatch => report.skipped.push((node.name.clone(), why)),
            Err(why) => problems.push(format!("layer '{}' ({}): {why}", node.name, node.layer.class_name())),
        }
    }
    for layer in saved.weighted_layers().filter(|l| !used.contains(l.name.as_str())) {
        if options.skip_mismatch || options.ignore_extra_layers {
            report.unused.push(layer.name.clone());
        } else {
            problems.push(format!("the file's layer '{}' matches no layer of model '{}'", layer.name, model.name));
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot load {file} onto model '{}' ({} problem(s); nothing was loaded):\n  {}",
            model.name,
            problems.len(),
            problems.join("\n  ")
        );
    }

    // Every shape checked: only now are the values read (a file cannot make us read what no
    // layer of the model would take), all of them before the model changes.
    let stored: Vec<&SavedWeight> = plan.iter().map(|(_, _, weight)| *weight).collect();
    let values = saved.read_values(&stored)?;
    no_grad(|| {
        for ((node, weight, _), value) in plan.iter().zip(&values) {
            let weights = model.layers()[*node].layer.weights();
            let target = &weights[*weight];
            let converted = target.layout.from_keras(value).to_device(target.tensor.device());
            target.tensor.shallow_clone().copy_(&converted);
        }
    });
    if let Some(epsilon) = scheme_mapping.map(SchemeMapping::file_epsilon) {
        model.set_batch_norm_epsilon(epsilon);
    }
    Ok(report)
}

/// Model layer name -> stored layer, by name, or through the ResNet50 scheme mapping when that
/// matches more layers. Keras 3 files (auto-named groups) match by order.
fn match_layers<'a>(
    model: &Model,
    weighted: &[usize],
    saved: &'a SavedWeights,
) -> (HashMap<String, &'a SavedLayer>, Option<SchemeMapping>) {
    let names: Vec<&str> = weighted.iter().map(|&i| model.layers()[i].name.as_str()).collect();
    let by_name: HashMap<String, &SavedLayer> = saved.weighted_layers().map(|l| (canonical(&l.name).to_string(), l)).collect();
    let direct = names.iter().filter(|n| by_name.contains_key(**n)).count();
    if saved.layout == FileLayout::Keras3 && direct < names.len() {
        // A Keras < 3.6 file: find each layer's group by Keras 3's class-and-counter naming.
        let groups = keras3_group_names(model);
        let by_group: HashMap<String, &SavedLayer> =
            saved.weighted_layers().filter_map(|l| Some((groups.get(l.keras3_group.as_ref()?)?.clone(), l))).collect();
        return (by_group, None);
    }
    let mut best = (by_name.clone(), None, direct);
    let pairs = resnet50_name_pairs();
    for mapping in [SchemeMapping::LegacyToKeras, SchemeMapping::KerasToLegacy] {
        let forward = mapping == SchemeMapping::LegacyToKeras;
        let map: HashMap<&str, &str> = pairs
            .iter()
            .map(|(legacy, keras)| if forward { (legacy.as_str(), keras.as_str()) } else { (keras.as_str(), legacy.as_str()) })
            .collect();
        let renamed: HashMap<String, &SavedLayer> = saved
            .weighted_layers()
            .map(|l| (map.get(canonical(&l.name)).map_or(canonical(&l.name).to_string(), |n| n.to_string()), l))
            .collect();
        let hits = names.iter().filter(|n| renamed.contains_key(**n)).count();
        if hits > best.2 {
            best = (renamed, Some(mapping), hits);
        }
    }
    (best.0, best.1)
}

/// keras-applications 1.0.8 (`resnet_common.py`, the first home of the ImageNet files in the
/// current naming) called ResNet50's classifier `probs`; Keras loads those files by layer order,
/// so the name never mattered there. Here it is read as `predictions`.
fn canonical(saved_name: &str) -> &str {
    if saved_name == "probs" {
        "predictions"
    } else {
        saved_name
    }
}

/// Keras 3's group name for each layer -> the layer's name: snake_case of the class with a
/// per-class counter, in `model.layers` order (`conv2d`, `conv2d_1`, …; `input_layer`).
pub(crate) fn keras3_group_names(model: &Model) -> HashMap<String, String> {
    let mut names = AutoNamer::new(KerasVersion::Keras3);
    model.layers().iter().map(|node| (names.next(node.layer.class_name()), node.name.clone())).collect()
}

/// Check one layer's stored weights against the model's: which stored weight goes where.
fn plan_layer<'a>(
    model: &Model,
    index: usize,
    stored: &'a SavedLayer,
    layout: FileLayout,
) -> std::result::Result<Vec<(usize, usize, &'a SavedWeight)>, String> {
    let weights = model.layers()[index].layer.weights();
    if stored.weights.len() != weights.len() {
        let expected: Vec<&str> = weights.iter().map(|w| w.name).collect();
        let found: Vec<&str> = stored.weights.iter().map(|w| w.name.as_str()).collect();
        return Err(format!(
            "the layer has {} weight(s) ({}) but the file's '{}' has {} ({})",
            weights.len(),
            expected.join(", "),
            stored.name,
            stored.weights.len(),
            found.join(", ")
        ));
    }
    let mut plan = Vec::new();
    for (position, weight) in weights.iter().enumerate() {
        // Keras 3 stores vars by position; the other layouts by name.
        let value = if layout == FileLayout::Keras3 {
            &stored.weights[position]
        } else {
            stored
                .weights
                .iter()
                .find(|w| w.name == weight.name)
                .ok_or_else(|| format!("the file's '{}' has no weight '{}'", stored.name, weight.name))?
        };
        let expected = keras_shape_of(weight);
        if value.shape != expected {
            return Err(format!(
                "weight '{}' expects shape {} but {} has shape {}",
                weight.name,
                tuple(&expected),
                value.dataset,
                tuple(&value.shape)
            ));
        }
        plan.push((index, position, value));
    }
    Ok(plan)
}
