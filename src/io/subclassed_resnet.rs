//! The weight files of the TF2 tutorial's subclassed ResNet18/34 — what `model.save_weights`
//! writes for its `ResNet(keras.Model)` of `Sequential`s of `BasicBlock`s — read onto and written
//! from the flat graph `--arch resnet18|resnet34` builds (`models::resnet_basic`).
//!
//! - tf.keras (`save_weights("x.h5")`): one root group per top-level attribute, named by Keras's
//!   session counters (`sequential`, `sequential_1`, `sequential_4`, …, `global_average_pooling2d`,
//!   `dense`), each holding *all* the weights of the objects inside it, trainable ones first
//!   (`basic_block/conv2d_1/kernel:0`, …, then the moving statistics). The counters depend on
//!   what the user's session made before, so Keras loads such a file by order — weighted groups
//!   in order, weights in order, every shape checked — and so does this module.
//! - Keras 3 (`save_weights("x.weights.h5")`): a group per object at its attribute path
//!   (`layer1/layers/basic_block/conv1/vars/0`); the stem, visited through `model.layers` before
//!   the `stem` attribute, is at `layers/sequential/…` (`stem/…` is accepted too).
//!
//! Written files name everything as a fresh Python session would, so the tutorial's classes read
//! them with `load_weights` in tf.keras and in Keras 3.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Result;
use hdf5::Group;

use super::load_weights::{check_shape, Assignment, LoadOptions, LoadReport};
use super::save_h5::{write_str_attr, write_str_list_attr, write_weight_dataset, KERAS_FORMAT_VERSION};
use super::saved_weights::{FileLayout, SavedLayer, SavedWeight, SavedWeights};
use crate::error::{Error, LayerProblem, LoadProblem};
use crate::graph::naming::{snake_case, AutoNamer, KerasVersion};
use crate::graph::summary::{subclassed_summary, SubclassedRow};
use crate::graph::Model;
use crate::models::names::basic_block;
use crate::models::resnet_basic::Depth;

/// Which of the tutorial's two file layouts a load read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubclassedLayout {
    /// tf.keras `save_weights(".h5")`, matched by Keras's order rule.
    TfKerasOrder,
    /// Keras 3 `save_weights(".weights.h5")`, matched by attribute path.
    Keras3Paths,
}

impl fmt::Display for SubclassedLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubclassedLayout::TfKerasOrder => "the TF2 tutorial's subclassed model, tf.keras save_weights layout, matched by order",
            SubclassedLayout::Keras3Paths => "the TF2 tutorial's subclassed model, Keras 3 save_weights layout, matched by attribute path",
        })
    }
}

/// The tutorial's `ResNet` as its weight files see it: every object Keras saves, in the order
/// Keras made them.
pub struct TutorialResnet {
    /// Keras's automatic name of the model (`res_net`).
    model_name: String,
    attributes: Vec<Attribute>,
}

/// A top-level attribute of the tutorial's `ResNet`, in `model.layers` order.
struct Attribute {
    /// `stem`, `layer1` … `layer4`, `avgpool`, `fc`.
    attribute: &'static str,
    /// The layer of our graph whose output is the attribute's (for a `Sequential`, whose output
    /// shape tf.keras's summary knows).
    output: Option<String>,
    /// Every object Keras 3 gives a group under it (itself first), in the order Keras made them.
    objects: Vec<KerasObject>,
}

struct KerasObject {
    class: &'static str,
    /// Keras's automatic name (`conv2d_1`): the tf.keras group of a top-level object, the `name`
    /// of a Keras 3 `vars` group.
    keras_name: String,
    /// Where Keras 3 stores it (`layer1/layers/basic_block/conv1`).
    keras3_path: String,
    /// The layer of our graph holding its weights (convolutions, BatchNorms, the Dense).
    layer: Option<String>,
    /// tf.keras's prefix of its weight names (`basic_block/conv2d_1`; a downsample's `conv2d_3`).
    tf_prefix: String,
}

impl Attribute {
    fn itself(&self) -> &KerasObject {
        &self.objects[0]
    }

    fn weighted(&self) -> impl Iterator<Item = &KerasObject> {
        self.objects.iter().filter(|o| o.layer.is_some())
    }
}

/// Makes the objects of one attribute, naming them with the session's counters as Keras does
/// when the tutorial's `__init__` runs.
struct Session {
    names: AutoNamer,
}

impl Session {
    fn object(&mut self, class: &'static str, keras3_path: String, layer: Option<String>, tf_scope: Option<&str>) -> KerasObject {
        let keras_name = self.names.next(class);
        let tf_prefix = tf_scope.map_or(keras_name.clone(), |scope| format!("{scope}/{keras_name}"));
        KerasObject { class, keras_name, keras3_path, layer, tf_prefix }
    }
}

impl TutorialResnet {
    /// The tutorial's `ResNet(layer_dims)` for `depth`, built in a fresh session.
    pub fn new(depth: Depth) -> Self {
        // Keras 2 and 3 count alike here (no inputs are named).
        let mut session = Session { names: AutoNamer::new(KerasVersion::Keras3) };
        let model_name = session.names.next("ResNet");
        let mut attributes = Vec::new();

        // self.stem = Sequential([Conv2D, BatchNormalization, Activation, MaxPool2D]): the list's
        // layers are made first, then the Sequential. Keras 3 reaches it through `model.layers`.
        let stem_parts =
            [("Conv2D", Some("stem_conv")), ("BatchNormalization", Some("stem_bn")), ("Activation", None), ("MaxPooling2D", None)];
        let parts: Vec<KerasObject> = stem_parts
            .iter()
            .map(|(class, layer)| {
                let path = format!("layers/sequential/layers/{}", snake_case(class));
                session.object(class, path, layer.map(str::to_string), None)
            })
            .collect();
        let stem = session.object("Sequential", "layers/sequential".into(), None, None);
        attributes.push(Attribute {
            attribute: "stem",
            output: Some("stem_pool".into()),
            objects: std::iter::once(stem).chain(parts).collect(),
        });

        for (stage, blocks) in depth.layer_dims().into_iter().enumerate() {
            let stage = stage + 1;
            let attribute = ["layer1", "layer2", "layer3", "layer4"][stage - 1];
            // build_resblock: the Sequential first, then its BasicBlocks.
            let mut objects = vec![session.object("Sequential", attribute.into(), None, None)];
            let mut in_list = AutoNamer::new(KerasVersion::Keras3);
            for block in 1..=blocks {
                let block_path = format!("{attribute}/layers/{}", in_list.next("BasicBlock"));
                let block_object = session.object("BasicBlock", block_path.clone(), None, None);
                let scope = block_object.keras_name.clone();
                objects.push(block_object);
                let ours = |part: &str| Some(basic_block(stage, block, part));
                for (class, part, layer) in [
                    ("Conv2D", "conv1", ours("conv1")),
                    ("BatchNormalization", "bn1", ours("bn1")),
                    ("Activation", "relu", None),
                    ("Conv2D", "conv2", ours("conv2")),
                    ("BatchNormalization", "bn2", ours("bn2")),
                ] {
                    objects.push(session.object(class, format!("{block_path}/{part}"), layer, Some(&scope)));
                }
                // self.downsample = Sequential([Conv2D(1×1)]): its convolution is named outside the block's scope.
                let conv = session.object("Conv2D", format!("{block_path}/downsample/layers/conv2d"), ours("downsample"), None);
                objects.push(session.object("Sequential", format!("{block_path}/downsample"), None, None));
                objects.push(conv);
            }
            attributes.push(Attribute { attribute, output: Some(basic_block(stage, blocks, "out")), objects });
        }
        let avgpool = session.object("GlobalAveragePooling2D", "avgpool".into(), None, None);
        attributes.push(Attribute { attribute: "avgpool", output: None, objects: vec![avgpool] });
        let fc = session.object("Dense", "fc".into(), Some("fc".into()), None);
        attributes.push(Attribute { attribute: "fc", output: None, objects: vec![fc] });
        Self { model_name, attributes }
    }

    /// The tutorial's model that `model` is (built by `--arch resnet18|resnet34`, or loaded from
    /// a file that keras-tch wrote for one), recognised by its weighted layers' names.
    pub fn of(model: &Model) -> Option<Self> {
        let weighted: HashSet<&str> = model.layers().iter().filter(|n| !n.layer.weights().is_empty()).map(|n| n.name.as_str()).collect();
        [Depth::Resnet18, Depth::Resnet34].into_iter().map(Self::new).find(|tutorial| {
            let ours: HashSet<&str> = tutorial.weighted_objects().filter_map(|o| o.layer.as_deref()).collect();
            ours == weighted
        })
    }

    fn weighted_objects(&self) -> impl Iterator<Item = &KerasObject> {
        self.attributes.iter().flat_map(Attribute::weighted)
    }

    /// Whether `saved` is one of the tutorial's files: a Keras 3 file with its attribute paths, or
    /// an HDF5 `save_weights` file none of whose layers is named like one of the model's.
    pub(crate) fn layout_of(&self, saved: &SavedWeights) -> Option<SubclassedLayout> {
        let paths: HashSet<&str> = saved.weighted_layers().filter_map(|l| l.keras3_group.as_deref()).collect();
        match saved.layout {
            FileLayout::Keras3 => {
                self.weighted_objects().any(|o| paths.contains(o.keras3_path.as_str())).then_some(SubclassedLayout::Keras3Paths)
            }
            FileLayout::WeightsOnly => {
                let ours: HashSet<&str> = self.weighted_objects().filter_map(|o| o.layer.as_deref()).collect();
                (!saved.weighted_layers().any(|l| ours.contains(l.name.as_str()))).then_some(SubclassedLayout::TfKerasOrder)
            }
            FileLayout::FullModel | FileLayout::Keras1 => None,
        }
    }

    /// Which stored weight goes to which weight of `model`, every shape checked, for a file in
    /// `layout`; all problems at once, as `apply_weights` reports them.
    pub(crate) fn plan<'a>(
        &self,
        model: &Model,
        saved: &'a SavedWeights,
        layout: SubclassedLayout,
        options: &LoadOptions,
    ) -> Result<(Vec<Assignment<'a>>, LoadReport)> {
        let mut report = LoadReport { subclassed: Some(layout), ..Default::default() };
        let mut problems = Vec::new();
        let stored_per_layer = match layout {
            SubclassedLayout::TfKerasOrder => self.pair_by_order(model, saved, &mut problems)?,
            SubclassedLayout::Keras3Paths => self.pair_by_path(model, saved, &mut problems, &mut report, options),
        };
        let mut plan = Vec::new();
        for (layer, stored) in stored_per_layer {
            let index = model.layer_id(&layer)?.0;
            let node = &model.layers()[index];
            match plan_layer(index, node.layer.weights().as_slice(), &stored) {
                Ok(assignments) => {
                    plan.extend(assignments);
                    report.loaded.push(layer);
                }
                Err(why) if options.skip_mismatch => report.skipped.push((layer, why)),
                Err(problem) => problems.push(LoadProblem::Layer { layer, class: node.layer.class_name(), problem }),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Load { path: saved.path.clone(), model: model.name.clone(), problems }.into());
        }
        Ok((plan, report))
    }

    /// tf.keras's rule (`load_weights_from_hdf5_group`): the file's weighted groups are the
    /// model's weighted attributes in order, each holding the trainable weights of its objects
    /// in order, then the non-trainable ones. Counts must agree exactly.
    fn pair_by_order<'a>(
        &self,
        model: &Model,
        saved: &'a SavedWeights,
        problems: &mut Vec<LoadProblem>,
    ) -> Result<Vec<(String, Vec<&'a SavedWeight>)>> {
        let groups: Vec<&SavedLayer> = saved.weighted_layers().collect();
        let attributes: Vec<&Attribute> = self.attributes.iter().filter(|a| a.weighted().next().is_some()).collect();
        if groups.len() != attributes.len() {
            problems.push(LoadProblem::LayerCount {
                expected: attributes.iter().map(|a| a.attribute.to_string()).collect(),
                found: groups.iter().map(|l| l.name.clone()).collect(),
            });
            return Ok(Vec::new());
        }
        let mut pairs = Vec::new();
        for (attribute, group) in attributes.into_iter().zip(groups) {
            // Each of the group's weights in turn: (our layer, the weight's index in it).
            let mut order: Vec<(&str, usize, &'static str)> = Vec::new();
            for trainable in [true, false] {
                for layer in attribute.weighted().filter_map(|o| o.layer.as_deref()) {
                    let weights = model.layer(layer)?.layer.weights();
                    order.extend(weights.iter().enumerate().filter(|(_, w)| w.trainable == trainable).map(|(i, w)| (layer, i, w.name)));
                }
            }
            if order.len() != group.weights.len() {
                problems.push(LoadProblem::Layer {
                    layer: attribute.attribute.to_string(),
                    class: "Sequential",
                    problem: LayerProblem::WeightCount {
                        stored: group.name.clone(),
                        expected: order.iter().map(|(layer, _, weight)| format!("{layer}/{weight}")).collect(),
                        found: group.weights.iter().map(|w| w.dataset.clone()).collect(),
                    },
                });
                continue;
            }
            let mut per_layer: HashMap<&str, Vec<(usize, &'a SavedWeight)>> = HashMap::new();
            for ((layer, index, _), weight) in order.into_iter().zip(&group.weights) {
                per_layer.entry(layer).or_default().push((index, weight));
            }
            for layer in attribute.weighted().filter_map(|o| o.layer.as_deref()) {
                let mut weights = per_layer.remove(layer).unwrap_or_default();
                weights.sort_by_key(|(index, _)| *index);
                pairs.push((layer.to_string(), weights.into_iter().map(|(_, w)| w).collect()));
            }
        }
        Ok(pairs)
    }

    /// Keras 3's rule: each object's variables at its attribute path, by position. The stem is
    /// looked for at `layers/sequential/…` (where Keras 3 writes it) and at `stem/…`.
    fn pair_by_path<'a>(
        &self,
        model: &Model,
        saved: &'a SavedWeights,
        problems: &mut Vec<LoadProblem>,
        report: &mut LoadReport,
        options: &LoadOptions,
    ) -> Vec<(String, Vec<&'a SavedWeight>)> {
        let by_path: HashMap<&str, &SavedLayer> = saved.weighted_layers().filter_map(|l| Some((l.keras3_group.as_deref()?, l))).collect();
        let mut used: HashSet<&str> = HashSet::new();
        let mut pairs = Vec::new();
        for object in self.weighted_objects() {
            let layer = object.layer.clone().unwrap_or_default();
            let stem_path = object.keras3_path.strip_prefix("layers/sequential/").map(|rest| format!("stem/{rest}"));
            let found =
                [Some(object.keras3_path.clone()), stem_path].into_iter().flatten().find_map(|path| by_path.get(path.as_str()).copied());
            match found {
                Some(stored) => {
                    used.insert(stored.keras3_group.as_deref().unwrap_or_default());
                    pairs.push((layer, stored.weights.iter().collect()));
                }
                None => {
                    let why = LayerProblem::MissingLayer { layer: object.keras3_path.clone(), suggestion: None };
                    if options.skip_mismatch {
                        report.skipped.push((layer, why));
                    } else {
                        let class = model.layer(&layer).map_or("", |node| node.layer.class_name());
                        problems.push(LoadProblem::Layer { layer, class, problem: why });
                    }
                }
            }
        }
        for (path, _) in by_path.iter().filter(|(path, _)| !used.contains(**path)) {
            if options.skip_mismatch || options.ignore_extra_layers {
                report.unused.push(path.to_string());
            } else {
                problems.push(LoadProblem::UnusedFileLayer { stored: path.to_string(), model: self.model_name.clone() });
            }
        }
        pairs
    }

    /// The table tf.keras's `model.summary()` prints for the tutorial's model: one row per
    /// top-level attribute (the `Sequential`s with their output shapes, the others `multiple`).
    pub fn summary(&self, model: &Model) -> Result<String> {
        let rows = self
            .attributes
            .iter()
            .map(|attribute| {
                let itself = attribute.itself();
                let output_shape =
                    attribute.output.as_deref().map(|layer| model.layer(layer).map(|n| n.output_shape.clone())).transpose()?;
                let params = attribute
                    .weighted()
                    .filter_map(|o| o.layer.as_deref())
                    .map(|l| model.layer(l).map(|n| n.param_count()))
                    .sum::<Result<i64>>()?;
                Ok(SubclassedRow { name: itself.keras_name.clone(), class: itself.class, output_shape, params })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(subclassed_summary(&self.model_name, &rows, model.param_counts()))
    }

    /// tf.keras's `save_weights("x.h5")` layout of `model`'s weights, at `root`.
    pub(crate) fn write_tf_keras(&self, model: &Model, root: &Group) -> Result<()> {
        write_str_attr(root, "backend", "tensorflow")?;
        write_str_attr(root, "keras_version", KERAS_FORMAT_VERSION)?;
        let names: Vec<&str> = self.attributes.iter().map(|a| a.itself().keras_name.as_str()).collect();
        write_str_list_attr(root, "layer_names", &names)?;
        for attribute in &self.attributes {
            let group = root.create_group(&attribute.itself().keras_name)?;
            let mut entries = Vec::new(); // (full weight name, layer, weight index)
            for trainable in [true, false] {
                for object in attribute.weighted() {
                    let layer = object.layer.as_deref().unwrap_or_default();
                    let weights = model.layer(layer)?.layer.weights();
                    for (index, weight) in weights.iter().enumerate().filter(|(_, w)| w.trainable == trainable) {
                        entries.push((format!("{}/{}:0", object.tf_prefix, weight.name), layer, index));
                    }
                }
            }
            if entries.is_empty() {
                group.new_attr::<f64>().shape([0]).create("weight_names")?;
                continue;
            }
            write_str_list_attr(&group, "weight_names", &entries.iter().map(|(name, _, _)| name.as_str()).collect::<Vec<_>>())?;
            for (name, layer, index) in &entries {
                write_weight_dataset(&group, name, &model.layer(layer)?.layer.weights()[*index])?;
            }
        }
        // The model's own weights (none), which tf.keras writes beside its layers.
        root.create_group("top_level_model_weights")?.new_attr::<f64>().shape([0]).create("weight_names")?;
        Ok(())
    }

    /// Keras 3's `save_weights("x.weights.h5")` layout of `model`'s weights, in `file`: every
    /// object's `vars` group (weightless ones included) named as Keras names them.
    pub(crate) fn write_keras3(&self, model: &Model, file: &Group) -> Result<()> {
        for object in self.attributes.iter().flat_map(|a| &a.objects) {
            let vars = file.create_group(&format!("{}/vars", object.keras3_path))?;
            write_str_attr(&vars, "name", &object.keras_name)?;
            if let Some(layer) = &object.layer {
                for (index, weight) in model.layer(layer)?.layer.weights().iter().enumerate() {
                    write_weight_dataset(&vars, &index.to_string(), weight)?;
                }
            }
        }
        let root_vars = file.create_group("vars")?;
        write_str_attr(&root_vars, "name", &self.model_name)
    }
}

/// One layer's stored weights (in the layer's own order) checked against its weights.
fn plan_layer<'a>(
    node: usize,
    weights: &[crate::layers::Weight],
    stored: &[&'a SavedWeight],
) -> std::result::Result<Vec<Assignment<'a>>, LayerProblem> {
    if stored.len() != weights.len() {
        return Err(LayerProblem::WeightCount {
            stored: stored.first().map_or_else(String::new, |w| w.dataset.clone()),
            expected: weights.iter().map(|w| w.name.to_string()).collect(),
            found: stored.iter().map(|w| w.dataset.clone()).collect(),
        });
    }
    let mut plan = Vec::new();
    for (position, (weight, value)) in weights.iter().zip(stored).enumerate() {
        check_shape(weight, value)?;
        plan.push(Assignment { node, weight: position, stored: value });
    }
    Ok(plan)
}
