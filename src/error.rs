//! keras-tch's typed errors, in the manner of candle's `Error` and burn-store's `ApplyError`:
//! the file, layer, weight and both shapes are fields a caller can match on, and the message
//! says them. The library returns them inside `anyhow::Error` (callers `downcast_ref` them);
//! the messages name no command-line flag — the CLI adds those hints.

use std::fmt;
use std::path::PathBuf;

use crate::graph::tuple;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Weights that do not fit a model: every problem found, and nothing was loaded.
    #[error("cannot load {} onto model '{model}' ({} problem(s); nothing was loaded):{}", path.display(), problems.len(), Indented(problems))]
    Load { path: PathBuf, model: String, problems: Vec<LoadProblem> },
    /// A weights-only file (HDF5 `save_weights`, safetensors) where a whole model was expected.
    #[error("{} holds weights only ({kind}, no model configuration): build the architecture and load the weights onto it", path.display())]
    WeightsOnly { path: PathBuf, kind: &'static str },
    /// A model configuration naming a Keras layer class keras-tch does not rebuild.
    #[error("layer class '{class}' is not supported by keras-tch (supported: {})", supported.join(", "))]
    UnsupportedLayerClass { class: String, supported: Vec<&'static str> },
    /// A layer configuration field keras-tch cannot take: of the wrong type, out of bounds, or
    /// a value it does not implement (the layer is named by the error's context).
    #[error("{problem}")]
    InvalidConfigField { field: String, problem: String },
    /// A model holding another model as a layer that keras-tch cannot yet write in a Keras
    /// format: a nested model whose call takes several tensors.
    #[error(
        "model '{model}' holds the {class} model '{nested}' as a layer: keras-tch writes nested models of one input, \
         not this one of several, as {format} yet (save as .safetensors to keep its weights)"
    )]
    NestedModelNotWritable { model: String, nested: String, class: String, format: &'static str },
    /// A file that is none of the formats keras-tch reads.
    #[error("{} is neither HDF5 (.h5), a Keras archive (.keras) nor safetensors: its first bytes are {first_bytes:02x?}", path.display())]
    UnknownFileFormat { path: PathBuf, first_bytes: Vec<u8> },
    /// An image whose header declares more pixels than the decoder's limit
    /// (`DecodeOptions::max_pixels`), refused before its pixels are decoded.
    #[error("the image is {width}×{height} = {} pixels, over the limit of {limit} (a possible decompression bomb, refused as Pillow does)", width * height)]
    ImageTooLarge { width: u64, height: u64, limit: u64 },
    /// Keras's `imagenet_class_index.json` is in none of the places it is looked for.
    #[error("Keras's ImageNet class index is not at {}: run scripts/setup.sh (it builds the file offline)", Joined(searched))]
    ClassIndexMissing { searched: Vec<PathBuf> },
    /// A launcher's variable (torchrun's `RANK`, `WORLD_SIZE`, `MASTER_PORT`, …) missing or
    /// malformed.
    #[error("distributed launch: {variable}={value:?} {problem}")]
    LaunchVariable { variable: &'static str, value: String, problem: String },
    /// A collective of the distributed process group failed: a rank died or is unreachable, or
    /// the group's timeout passed.
    #[error("rank {rank} of {world_size}: {operation} failed: {message}")]
    Collective { rank: usize, world_size: usize, operation: &'static str, message: String },
}

/// Paths joined by " or ".
struct Joined<'a>(&'a [PathBuf]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self.0.iter().map(|p| p.display().to_string()).collect();
        f.write_str(&paths.join(" or "))
    }
}

/// One reason a load could not proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadProblem {
    /// A layer of the model that cannot take the file's weights.
    #[error("layer '{layer}' ({class}): {problem}")]
    Layer { layer: String, class: &'static str, problem: LayerProblem },
    /// A file loaded by Keras's order rule (a subclassed model's weights) whose weighted layers
    /// are not as many as the model's.
    #[error("the model has {} weighted layer(s) ({}) but the file has {} ({}); Keras loads this layout by order", expected.len(), expected.join(", "), found.len(), found.join(", "))]
    LayerCount { expected: Vec<String>, found: Vec<String> },
    /// A weighted layer of the file that no layer of the model takes.
    #[error("the file's layer '{stored}' matches no layer of model '{model}'")]
    UnusedFileLayer { stored: String, model: String },
}

/// Why one model layer cannot take the file's weights (also what a skipped layer reports).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayerProblem {
    #[error("the file has no layer '{layer}'{}", DidYouMean(suggestion))]
    MissingLayer { layer: String, suggestion: Option<String> },
    #[error("the layer has {} weight(s) ({}) but the file's '{stored}' has {} ({})", expected.len(), expected.join(", "), found.len(), found.join(", "))]
    WeightCount { stored: String, expected: Vec<String>, found: Vec<String> },
    #[error("the file's '{stored}' has no weight '{weight}'")]
    MissingWeight { stored: String, weight: String },
    #[error("weight '{weight}' expects shape {} but {dataset} has shape {}", tuple(expected), tuple(found))]
    ShapeMismatch { weight: String, dataset: String, expected: Vec<i64>, found: Vec<i64> },
}

/// `; did you mean 'x'?` when there is a suggestion.
struct DidYouMean<'a>(&'a Option<String>);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "; did you mean '{name}'?"),
            None => Ok(()),
        }
    }
}

/// Each item on its own indented line.
struct Indented<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Indented<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|item| write!(f, "\n  {item}"))
    }
}

/// The name among `candidates` closest to `name` by edit distance, if it is close enough to be
/// a likely typo or renaming (at most a third of the name's length, and at least 1 edit).
pub fn closest_name<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(ca != cb)).min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names_are_near_misses_only() {
        let stored = ["conv2d_1", "dense", "batch_normalization"];
        assert_eq!(closest_name("conv2d_2", stored), Some("conv2d_1".into()));
        assert_eq!(closest_name("fc", stored), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn load_errors_list_every_problem_with_both_shapes() {
        let error = Error::Load {
            path: "w.h5".into(),
            model: "m".into(),
            problems: vec![
                LoadProblem::Layer {
                    layer: "fc".into(),
                    class: "Dense",
                    problem: LayerProblem::ShapeMismatch {
                        weight: "kernel".into(),
                        dataset: "fc/fc/kernel:0".into(),
                        expected: vec![2048, 6],
                        found: vec![2048, 1000],
                    },
                },
                LoadProblem::UnusedFileLayer { stored: "extra".into(), model: "m".into() },
            ],
        };
        assert_eq!(
            error.to_string(),
            "cannot load w.h5 onto model 'm' (2 problem(s); nothing was loaded):\n  \
             layer 'fc' (Dense): weight 'kernel' expects shape (2048, 6) but fc/fc/kernel:0 has shape (2048, 1000)\n  \
             the file's layer 'extra' matches no layer of model 'm'"
        );
    }
}
