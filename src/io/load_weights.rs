//! Loading stored weights onto a built model, by layer name, all-or-nothing.
//!
//! Like Keras's `load_weights(by_name=True)`, with two additions: ResNet50 checkpoints in the
//! other naming scheme are mapped (`res2a_branch2a` ↔ `conv2_block1_1_conv`, …) and the
//! BatchNorm epsilon becomes the one the file's architecture used; and every problem of a load is
//! reported at once. Strict by default (a missing layer, an extra layer or a wrong shape is an
//! error and the model is left unchanged); `skip_mismatch` loads what matches and reports the rest.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Result;
use tch::no_grad;

use super::nested_weights::split_nested_layers;
use super::saved_weights::{FileLayout, SavedLayer, SavedWeight, SavedWeights};
use super::subclassed_resnet::{SubclassedLayout, TutorialResnet};
use crate::error::{closest_name, Error, LayerProblem, LoadProblem};
use crate::graph::naming::{AutoNamer, KerasVersion};
use crate::graph::{keras_shape_of, Model};
use crate::layers::Weight;
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
    pub skipped: Vec<(String, LayerProblem)>,
    /// Weighted layers of the file that no model layer took.
    pub unused: Vec<String>,
    /// Set when the file's ResNet50 names were mapped onto the model's other scheme.
    pub scheme_mapping: Option<SchemeMapping>,
    /// Set when the file was the TF2 tutorial's subclassed ResNet18/34 `save_weights` file.
    pub subclassed: Option<SubclassedLayout>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loaded {} layer(s)", self.loaded.len())?;
        if let Some(mapping) = self.scheme_mapping {
            write!(f, " (names mapped {mapping})")?;
        }
        if let Some(layout) = self.subclassed {
            write!(f, " ({layout})")?;
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

/// One stored weight planned for one weight of a model layer.
pub(crate) struct Assignment<'a> {
    /// The layer's index in the model.
    pub node: usize,
    /// The weight's index in the layer's `weights()`.
    pub weight: usize,
    pub stored: &'a SavedWeight,
}

/// Load `saved` onto `model`.
pub fn apply_weights(model: &mut Model, saved: &SavedWeights, options: &LoadOptions) -> Result<LoadReport> {
    let split = split_nested_layers(model, saved);
    let saved = split.as_ref().unwrap_or(saved);
    let tutorial = TutorialResnet::of(model);
    let (plan, report) = match tutorial.as_ref().and_then(|t| Some((t, t.layout_of(saved)?))) {
        Some((tutorial, layout)) => tutorial.plan(model, saved, layout, options)?,
        None => plan_by_name(model, saved, options)?,
    };
    // Every shape checked: only now are the values read (a file cannot make us read what no
    // layer of the model would take), all of them before the model changes.
    let stored: Vec<&SavedWeight> = plan.iter().map(|a| a.stored).collect();
    let values = saved.read_values(&stored)?;
    no_grad(|| {
        for (assignment, value) in plan.iter().zip(&values) {
            let weights = model.layers()[assignment.node].layer.weights();
            let target = &weights[assignment.weight];
            let converted = target.layout.from_keras(value).to_device(target.tensor.device());
            target.tensor.shallow_clone().copy_(&converted);
        }
    });
    if let Some(epsilon) = report.scheme_mapping.map(SchemeMapping::file_epsilon) {
        model.set_batch_norm_epsilon(epsilon);
    }
    Ok(report)
}

/// Keras's `load_weights(by_name=True)`: each weighted layer of the model takes the file's layer
/// of the same name (or the other ResNet50 scheme's, or Keras 3's group), all problems at once.
fn plan_by_name<'a>(model: &Model, saved: &'a SavedWeights, options: &LoadOptions) -> Result<(Vec<Assignment<'a>>, LoadReport)> {
    let weighted: Vec<usize> = (0..model.layers().len()).filter(|&i| !model.layers()[i].layer.weights().is_empty()).collect();
    let (lookup, scheme_mapping) = match_layers(model, &weighted, saved);
    let mut report = LoadReport { scheme_mapping, ..Default::default() };
    let mut problems = Vec::new();
    let mut plan = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();

    for &index in &weighted {
        let node = &model.layers()[index];
        let layer_problem = |problem| LoadProblem::Layer { layer: node.name.clone(), class: node.layer.class_name(), problem };
        let Some(stored) = lookup.get(&node.name).copied() else {
            let unmatched = lookup.keys().filter(|name| model.layer_id(name).is_err()).map(String::as_str);
            let why = LayerProblem::MissingLayer { layer: node.name.clone(), suggestion: closest_name(&node.name, unmatched) };
            if options.skip_mismatch {
                report.skipped.push((node.name.clone(), why));
            } else {
                problems.push(layer_problem(why));
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
            Err(why) => problems.push(layer_problem(why)),
        }
    }
    for layer in saved.weighted_layers().filter(|l| !used.contains(l.name.as_str())) {
        if options.skip_mismatch || options.ignore_extra_layers {
            report.unused.push(layer.name.clone());
        } else {
            problems.push(LoadProblem::UnusedFileLayer { stored: layer.name.clone(), model: model.name.clone() });
        }
    }
    if !problems.is_empty() {
        return Err(Error::Load { path: saved.path.clone(), model: model.name.clone(), problems }.into());
    }
    Ok((plan, report))
}

/// Model layer name -> stored layer, by name, or through the ResNet50 scheme mapping when that
/// matches more layers. Keras 3 files (auto-named groups) match by order.
fn match_layers<'a>(
    model: &Model,
    weighted: &[usize],
    saved: &'a SavedWeights,
) -> (HashMap<String, &'a SavedLayer>, Option<SchemeMapping>) {
    let names: Vec<&str> = weighted.iter().map(|&i| model.layers()[i].name.as_str()).collect();
    let canonical = |saved_name: &'a str| canonical(saved_name, &names);
    let by_name: HashMap<String, &SavedLayer> = saved.weighted_layers().map(|l| (canonical(&l.name).to_string(), l)).collect();
    let direct = names.iter().filter(|n| by_name.contains_key(**n)).count();
    if saved.layout == FileLayout::Keras3 && direct < names.len() {
        // A Keras < 3.6 file: find each layer's group by Keras 3's class-and-counter naming.
        let groups = keras3_group_names(model);
        let by_group: HashMap<String, &SavedLayer> = saved
            .weighted_layers()
            .filter_map(|l| Some((groups.get(l.keras3_group.as_ref()?.strip_prefix("layers/")?)?.clone(), l)))
            .collect();
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
/// so the name never mattered there. Here it is read as `predictions` — unless the model has a
/// layer of its own called `probs`.
fn canonical<'a>(saved_name: &'a str, model_names: &[&str]) -> &'a str {
    if saved_name == "probs" && !model_names.contains(&"probs") {
        "predictions"
    } else {
        saved_name
    }
}

/// Keras 3's group name for each layer -> the layer's name: snake_case of the class with a
/// per-class counter, in `model.layers` order (`conv2d`, `conv2d_1`, …; `input_layer`). A
/// nested model is a group of its own class's name (`functional`) in its model's order, and
/// its layers are named inside it, counting afresh (`functional/layers/conv2d`).
pub(crate) fn keras3_group_names(model: &Model) -> HashMap<String, String> {
    keras3_groups(model).0
}

/// [`keras3_group_names`], and each nested model's path -> its group (`functional`).
pub(crate) fn keras3_groups(model: &Model) -> (HashMap<String, String>, HashMap<String, String>) {
    // Per model path ("" for the outer model): its counters, and the group it is stored in.
    let mut namers: HashMap<&str, AutoNamer> = HashMap::new();
    let mut groups: HashMap<&str, String> = HashMap::from([("", String::new())]);
    let mut names = HashMap::new();
    for node in model.layers() {
        let mut parent = "";
        // The nested models holding the layer, outermost first (paths grow inwards).
        let mut holders: Vec<_> = model.nested_models().iter().filter(|nested| nested.contains(&node.name)).collect();
        holders.sort_by_key(|nested| nested.path.len());
        for nested in holders {
            if !groups.contains_key(nested.path.as_str()) {
                let own = namers.entry(parent).or_insert_with(|| AutoNamer::new(KerasVersion::Keras3)).next(&nested.class_name);
                groups.insert(&nested.path, keras3_group_path(&groups[parent], &own));
            }
            parent = &nested.path;
        }
        let own = namers.entry(parent).or_insert_with(|| AutoNamer::new(KerasVersion::Keras3)).next(node.layer.class_name());
        names.insert(keras3_group_path(&groups[parent], &own), node.name.clone());
    }
    let nested = groups.into_iter().filter(|(path, _)| !path.is_empty()).map(|(path, group)| (path.to_string(), group)).collect();
    (names, nested)
}

/// `functional` + `conv2d` → `functional/layers/conv2d` (Keras 3's path of a layer inside a
/// nested model); at the top, the name itself.
pub(crate) fn keras3_group_path(parent_group: &str, name: &str) -> String {
    if parent_group.is_empty() {
        name.to_string()
    } else {
        format!("{parent_group}/layers/{name}")
    }
}

/// Check one layer's stored weights against the model's: which stored weight goes where.
fn plan_layer<'a>(
    model: &Model,
    index: usize,
    stored: &'a SavedLayer,
    layout: FileLayout,
) -> std::result::Result<Vec<Assignment<'a>>, LayerProblem> {
    let weights = model.layers()[index].layer.weights();
    if stored.weights.len() != weights.len() {
        return Err(LayerProblem::WeightCount {
            stored: stored.name.clone(),
            expected: weights.iter().map(|w| w.name.to_string()).collect(),
            found: stored.weights.iter().map(|w| w.name.clone()).collect(),
        });
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
                .ok_or_else(|| LayerProblem::MissingWeight { stored: stored.name.clone(), weight: weight.name.to_string() })?
        };
        check_shape(weight, value)?;
        plan.push(Assignment { node: index, weight: position, stored: value });
    }
    Ok(plan)
}

/// The stored value's shape must be the weight's, in Keras's layout.
pub(crate) fn check_shape(weight: &Weight, value: &SavedWeight) -> std::result::Result<(), LayerProblem> {
    let expected = keras_shape_of(weight);
    if value.shape != expected {
        return Err(LayerProblem::ShapeMismatch {
            weight: weight.name.to_string(),
            dataset: value.dataset.clone(),
            expected,
            found: value.shape.clone(),
        });
    }
    Ok(())
}
