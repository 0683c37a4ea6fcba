//! Keras's automatic layer names (`keras/src/utils/naming.py`): the class name in snake case,
//! numbered from the second layer of a class on (`conv2d`, `conv2d_1`, …). The Keras versions
//! differ for inputs: tf.keras names them `input_1`, `input_2`, …; Keras 3 `input_layer`,
//! `input_layer_1`, … — and Keras 3 uses the same rule for the groups of a `.weights.h5` file.

use std::collections::HashMap;

/// Which Keras a name, a configuration or a file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KerasVersion {
    /// Keras 2 / tf.keras (`tf_keras`), the course's Keras.
    Keras2,
    /// Keras 3 (`.keras` archives, `.weights.h5`).
    Keras3,
}

/// Hands out automatic names in order, as Keras's per-session counters do.
pub struct AutoNamer {
    version: KerasVersion,
    counts: HashMap<String, usize>,
}

impl AutoNamer {
    pub fn new(version: KerasVersion) -> Self {
        Self { version, counts: HashMap::new() }
    }

    /// The automatic name of the `n`th layer of `class_name` (counting from 0), as a fresh
    /// namer gives it.
    pub fn nth(mut self, class_name: &str, n: usize) -> String {
        (0..n).for_each(|_| {
            self.next(class_name);
        });
        self.next(class_name)
    }

    /// The next automatic name for a layer of `class_name`.
    pub fn next(&mut self, class_name: &str) -> String {
        let base = match (class_name, self.version) {
            ("InputLayer", KerasVersion::Keras2) => "input".to_string(),
            _ => snake_case(class_name),
        };
        let count = self.counts.entry(base.clone()).or_insert(0);
        let index = *count;
        *count += 1;
        match (class_name, self.version, index) {
            // tf.keras numbers inputs from 1.
            ("InputLayer", KerasVersion::Keras2, n) => format!("{base}_{}", n + 1),
            (_, _, 0) => base,
            (_, _, n) => format!("{base}_{n}"),
        }
    }
}

/// Keras's `to_snake_case`: an underscore before each capitalised word that follows a character
/// (`ZeroPadding2D` → `zero_padding2d`), then between a lowercase letter and a capital
/// (`ReLU` → `re_lu`), then lowercase — the two regular expressions Keras applies, in order.
pub fn snake_case(class_name: &str) -> String {
    let chars: Vec<char> = class_name.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    // `re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)`: matches do not overlap, so scanning resumes
    // after each capitalised word.
    let mut words = Vec::with_capacity(chars.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        words.push(chars[i]);
        let word_follows = chars.get(i + 1).is_some_and(char::is_ascii_uppercase) && chars.get(i + 2).is_some_and(char::is_ascii_lowercase);
        i += 1;
        if word_follows {
            words.push('_');
            words.push(chars[i]);
            i += 1;
            while i < chars.len() && chars[i].is_ascii_lowercase() {
                words.push(chars[i]);
                i += 1;
            }
        }
    }
    // `re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()`.
    let mut out = String::with_capacity(words.len() + 4);
    for (j, &c) in words.iter().enumerate() {
        if j > 0 && words[j - 1].is_ascii_lowercase() && c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        for (class, name) in [
            ("ZeroPadding2D", "zero_padding2d"),
            ("BatchNormalization", "batch_normalization"),
            ("Conv2D", "conv2d"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("Add", "add"),
            ("ReLU", "re_lu"),
            ("Softmax", "softmax"),
            ("InputLayer", "input_layer"),
        ] {
            assert_eq!(snake_case(class), name, "{class}");
        }
    }

    #[test]
    fn inputs_are_numbered_per_keras_version() {
        let mut keras2 = AutoNamer::new(KerasVersion::Keras2);
        let mut keras3 = AutoNamer::new(KerasVersion::Keras3);
        let names = |namer: &mut AutoNamer| ["InputLayer", "InputLayer", "Conv2D", "Conv2D"].map(|c| namer.next(c));
        assert_eq!(names(&mut keras2), ["input_1", "input_2", "conv2d", "conv2d_1"]);
        assert_eq!(names(&mut keras3), ["input_layer", "input_layer_1", "conv2d", "conv2d_1"]);
    }
}
