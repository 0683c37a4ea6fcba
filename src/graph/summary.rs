//! `model.summary()` as Keras 2 prints it (`keras/utils/layer_utils.py::print_summary`):
//! a 98-column table with "Connected to" for branching graphs, a 65-column one for chains,
//! `None` for the batch axis, and totals with thousands separators.

use super::{keras_shape, Model};

/// The summary text, lines joined by '\n' (with a trailing newline).
pub fn summary(model: &Model) -> String {
    let sequential_like = is_sequential_like(model);
    let (line_length, positions, header): (usize, Vec<usize>, Vec<&str>) = if sequential_like {
        (65, fractions(65, &[0.45, 0.85, 1.0]), vec!["Layer (type)", "Output Shape", "Param #"])
    } else {
        (98, fractions(98, &[0.33, 0.55, 0.67, 1.0]), vec!["Layer (type)", "Output Shape", "Param #", "Connected to"])
    };
    let mut out = Vec::new();
    out.push(format!("Model: \"{}\"", model.name));
    out.push("_".repeat(line_length));
    out.push(row(&header.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &positions));
    out.push("=".repeat(line_length));
    let layers = model.layers();
    for (i, node) in layers.iter().enumerate() {
        let connections: Vec<String> = node.inbound.iter().map(|id| format!("{}[0][0]", model.node(*id).name)).collect();
        let mut fields =
            vec![format!("{} ({})", node.name, node.layer.class_name()), keras_shape(&node.output_shape), node.param_count().to_string()];
        if !sequential_like {
            fields.push(connections.first().cloned().unwrap_or_default());
        }
        out.push(row(&fields, &positions));
        if !sequential_like {
            for connection in connections.iter().skip(1) {
                out.push(row(&[String::new(), String::new(), String::new(), connection.clone()], &positions));
            }
        }
        out.push(if i + 1 == layers.len() { "=" } else { "_" }.repeat(line_length));
    }
    let (total, trainable, non_trainable) = model.param_counts();
    out.push(format!("Total params: {}", thousands(total)));
    out.push(format!("Trainable params: {}", thousands(trainable)));
    out.push(format!("Non-trainable params: {}", thousands(non_trainable)));
    out.push("_".repeat(line_length));
    out.join("\n") + "\n"
}

/// Keras's test: a graph is printed as a chain when no layer has several inputs and no output
/// feeds several layers.
fn is_sequential_like(model: &Model) -> bool {
    let layers = model.layers();
    let mut readers = vec![0usize; layers.len()];
    for node in layers {
        if node.inbound.len() > 1 {
            return false;
        }
        for id in &node.inbound {
            readers[id.0] += 1;
        }
    }
    readers.iter().all(|&r| r <= 1)
}

fn fractions(line_length: usize, positions: &[f64]) -> Vec<usize> {
    positions.iter().map(|p| (line_length as f64 * p) as usize).collect()
}

/// One row: each field cut to its column and padded to the next column's start.
fn row(fields: &[String], positions: &[usize]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.pop();
            line.push(' ');
        }
        line.push_str(field);
        line = line.chars().take(positions[i]).collect();
        let pad = positions[i].saturating_sub(line.chars().count());
        line.push_str(&" ".repeat(pad));
    }
    line
}

/// One top-level layer of a subclassed model, as its summary lists it.
pub struct SubclassedRow {
    pub name: String,
    pub class: &'static str,
    /// `None` prints `multiple`: tf.keras knows no single output shape for a plain layer called
    /// inside a subclassed model's `call`.
    pub output_shape: Option<Vec<i64>>,
    pub params: i64,
}

/// `model.summary()` of a subclassed model as tf.keras 2.13+ prints it (the TF2 tutorial's
/// `ResNet`): one row per top-level layer, long fields wrapped inside their column, a blank line
/// after each row, and totals without separators but with their float32 size.
pub fn subclassed_summary(model_name: &str, rows: &[SubclassedRow], (total, trainable, non_trainable): (i64, i64, i64)) -> String {
    const LINE_LENGTH: usize = 65;
    let positions = fractions(LINE_LENGTH, &[0.45, 0.85, 1.0]);
    let mut out = vec![format!("Model: \"{model_name}\""), "_".repeat(LINE_LENGTH)];
    out.extend(wrapped_row(&["Layer (type)", "Output Shape", "Param #"], &positions));
    out.push("=".repeat(LINE_LENGTH));
    for row in rows {
        let shape = row.output_shape.as_deref().map_or("multiple".to_string(), keras_shape);
        out.extend(wrapped_row(&[&format!("{} ({})", row.name, row.class), &shape, &row.params.to_string()], &positions));
        out.push(" ".repeat(LINE_LENGTH));
    }
    out.push("=".repeat(LINE_LENGTH));
    for (what, count) in [("Total", total), ("Trainable", trainable), ("Non-trainable", non_trainable)] {
        out.push(format!("{what} params: {count} ({})", readable_memory_size(count as f64 * 4.0)));
    }
    out.push("_".repeat(LINE_LENGTH));
    out.join("\n") + "\n"
}

/// tf.keras's `print_row`: each field cut to its column (less two spaces, and one more before
/// the last column), the rest carried to the next line, until every field is printed.
fn wrapped_row(fields: &[&str], positions: &[usize]) -> Vec<String> {
    let mut left: Vec<Vec<char>> = fields.iter().map(|f| f.chars().collect()).collect();
    let mut lines = Vec::new();
    while left.iter().any(|f| !f.is_empty()) {
        let mut line = String::new();
        for (column, field) in left.iter_mut().enumerate() {
            let start = if column == 0 { 0 } else { positions[column - 1] };
            let last = column == positions.len() - 1;
            let space = if last { 0 } else { 2 };
            let cutoff = (positions[column] - start - space - usize::from(!last)).min(field.len());
            if column == 0 {
                line.push(' ');
            }
            line.extend(field.drain(..cutoff));
            line.push_str(&" ".repeat(space));
            let pad = positions[column].saturating_sub(line.chars().count());
            line.push_str(&" ".repeat(pad));
        }
        lines.push(line);
    }
    lines
}

/// tf.keras's `readable_memory_size`: `45.98 MB`, in steps of 1024.
fn readable_memory_size(mut bytes: f64) -> String {
    for unit in ["Byte", "KB", "MB", "GB", "TB"] {
        if bytes / 1024.0 < 1.0 {
            return format!("{bytes:.2} {unit}");
        }
        bytes /= 1024.0;
    }
    format!("{bytes:.2} PB")
}

/// `{:,}` of Python: 23600006 -> "23,600,006".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators_like_python() {
        assert_eq!(thousands(23_600_006), "23,600,006");
        assert_eq!(thousands(53_120), "53,120");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn memory_sizes_like_tf_keras() {
        assert_eq!(readable_memory_size(48_214_432.0), "45.98 MB");
        assert_eq!(readable_memory_size(31_232.0), "30.50 KB");
        assert_eq!(readable_memory_size(0.0), "0.00 Byte");
    }

    #[test]
    fn long_fields_wrap_inside_their_column() {
        let positions = fractions(65, &[0.45, 0.85, 1.0]);
        let lines = wrapped_row(&["global_average_pooling2d (GlobalAveragePooling2D)", "multiple", "0"], &positions);
        assert_eq!(
            lines,
            [
                " global_average_pooling2d (  multiple                  0         ",
                " GlobalAveragePooling2D)                                         "
            ]
        );
    }

    #[test]
    fn rows_cut_and_pad_to_the_columns() {
        let positions = vec![10, 20];
        assert_eq!(row(&["abc".into(), "de".into()], &positions), "abc       de        ");
        assert_eq!(row(&["abcdefghijkl".into(), "x".into()], &positions), "abcdefghi x         ");
    }
}
