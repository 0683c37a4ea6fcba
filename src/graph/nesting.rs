//! Models used as layers of another model, as Keras's transfer-learning guide builds them
//! (`x = base_model(x, training=False)`, the whole base one layer of the outer model).
//!
//! keras-tch inlines a nested model's layers into the outer graph, named by their path
//! (`resnet50/conv1_conv`), and keeps here what the files need of each nested model: its path,
//! its class, and the `training=` argument of its call — which every layer inside it inherits,
//! so that a base called with `training=False` keeps its BatchNorm on the moving statistics and
//! its Dropout off even while the outer model trains, as in Keras.

/// Between a nested model's path and the name of a layer inside it (`resnet50/conv1_conv`).
/// Keras does not allow it in layer names, so a path cannot be mistaken for a name.
pub const PATH_SEPARATOR: char = '/';

#[derive(Debug, Clone, PartialEq)]
pub struct NestedModel {
    /// Where it is: `resnet50`, or `outer/inner` for a model nested in a nested model.
    pub path: String,
    /// Keras's class: `Functional` or `Sequential`.
    pub class_name: String,
    /// The `training=` keyword of its call (`None`: not given, the outer model's mode rules).
    pub call_training: Option<bool>,
}

impl NestedModel {
    /// Its own name, the last part of its path.
    pub fn name(&self) -> &str {
        self.path.rsplit(PATH_SEPARATOR).next().unwrap_or(&self.path)
    }

    /// Whether the layer called `layer_name` is inside it (at any depth).
    pub fn contains(&self, layer_name: &str) -> bool {
        layer_name.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.starts_with(PATH_SEPARATOR))
    }
}

/// `resnet50` + `conv1_conv` → `resnet50/conv1_conv`; an empty path gives the name itself.
pub fn path_name(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}{PATH_SEPARATOR}{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_model_contains_only_the_layers_under_its_path() {
        let base = NestedModel { path: "resnet50".into(), class_name: "Functional".into(), call_training: Some(false) };
        assert!(base.contains("resnet50/conv1_conv") && base.contains("resnet50/inner/conv"));
        assert!(!base.contains("resnet50") && !base.contains("resnet50_2/conv") && !base.contains("dense"));
        assert_eq!(NestedModel { path: "a/b".into(), ..base }.name(), "b");
        assert_eq!(path_name("", "dense"), "dense");
        assert_eq!(path_name("a/b", "conv"), "a/b/conv");
    }
}
