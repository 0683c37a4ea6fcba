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
    /// The names of its own input layers (which the inlined graph replaces by the tensors its
    /// call takes), for writing it back.
    pub input_names: Vec<String>,
}

impl NestedModel {
    /// Its own name, the last part of its path.
    pub fn name(&self) -> &str {
        own_name(&self.path)
    }

    /// Whether the layer called `layer_name` is inside it (at any depth).
    pub fn contains(&self, layer_name: &str) -> bool {
        layer_name.strip_prefix(self.path.as_str()).is_some_and(|rest| rest.starts_with(PATH_SEPARATOR))
    }

    /// The path of the model it is a layer of (`""`: the outer model).
    pub fn parent_path(&self) -> &str {
        self.path.rsplit_once(PATH_SEPARATOR).map_or("", |(parent, _)| parent)
    }
}

/// Where a layer stands as seen from the model at `scope` (a nested model's path, `""` for the
/// outer model).
pub enum Placement<'a> {
    /// A layer of that model itself.
    Direct,
    /// Inside this model nested in it (at any depth below).
    In(&'a NestedModel),
    /// Not inside that model.
    Outside,
}

/// Where `layer_name` stands as seen from the model at `scope`, among `nested`.
pub fn placement<'a>(nested: &'a [NestedModel], scope: &str, layer_name: &str) -> Placement<'a> {
    let inside_scope = scope.is_empty() || layer_name.strip_prefix(scope).is_some_and(|rest| rest.starts_with(PATH_SEPARATOR));
    if !inside_scope {
        return Placement::Outside;
    }
    match nested.iter().find(|n| n.parent_path() == scope && n.contains(layer_name)) {
        Some(child) => Placement::In(child),
        None => Placement::Direct,
    }
}

/// `layer_name` without the path of the model at `scope` (`resnet50/conv1_conv` in `resnet50`
/// → `conv1_conv`).
pub fn local_name<'a>(scope: &str, layer_name: &'a str) -> &'a str {
    if scope.is_empty() {
        layer_name
    } else {
        layer_name.strip_prefix(scope).and_then(|rest| rest.strip_prefix(PATH_SEPARATOR)).unwrap_or(layer_name)
    }
}

/// The `training=` the layers directly in the model at `scope` inherit: the innermost call
/// that gave one, from `scope` outwards.
pub fn inherited_training(nested: &[NestedModel], scope: &str) -> Option<bool> {
    let mut path = scope;
    while !path.is_empty() {
        let model = nested.iter().find(|n| n.path == path)?;
        if model.call_training.is_some() {
            return model.call_training;
        }
        path = model.parent_path();
    }
    None
}

/// A layer's own name, without the path of the nested model it is in (`resnet50/conv1_conv` →
/// `conv1_conv`).
pub fn own_name(layer_name: &str) -> &str {
    layer_name.rsplit(PATH_SEPARATOR).next().unwrap_or(layer_name)
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
        let base = NestedModel {
            path: "resnet50".into(),
            class_name: "Functional".into(),
            call_training: Some(false),
            input_names: vec!["input_1".into()],
        };
        assert!(base.contains("resnet50/conv1_conv") && base.contains("resnet50/inner/conv"));
        assert!(!base.contains("resnet50") && !base.contains("resnet50_2/conv") && !base.contains("dense"));
        assert_eq!(NestedModel { path: "a/b".into(), ..base }.name(), "b");
        assert_eq!(path_name("", "dense"), "dense");
        assert_eq!(path_name("a/b", "conv"), "a/b/conv");
    }

    #[test]
    fn placements_and_local_names_are_seen_from_the_scope() {
        let model = |path: &str, training| NestedModel {
            path: path.into(),
            class_name: "Functional".into(),
            call_training: training,
            input_names: Vec::new(),
        };
        let nested = [model("base", Some(false)), model("base/block", None)];
        assert!(matches!(placement(&nested, "", "dense"), Placement::Direct));
        assert!(matches!(placement(&nested, "", "base/block/conv"), Placement::In(n) if n.path == "base"));
        assert!(matches!(placement(&nested, "base", "base/block/conv"), Placement::In(n) if n.path == "base/block"));
        assert!(matches!(placement(&nested, "base", "base/conv"), Placement::Direct));
        assert!(matches!(placement(&nested, "base", "dense"), Placement::Outside));
        assert_eq!(local_name("base/block", "base/block/conv"), "conv");
        assert_eq!(inherited_training(&nested, "base/block"), Some(false));
        assert_eq!(inherited_training(&nested, ""), None);
    }
}
