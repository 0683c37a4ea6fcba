//! `model.summary()` as Keras 2 prints it (`keras/utils/layer_utils.py::print_summary`):
//! a 98-column table with "Connected to" for branching graphs, a 65-column one for chains,
//! `None` for the batch axis, and totals with thousands separators.

use super::nesting::{local_name, placement, Placement};
use super::{keras_shape, Model};

/// The summary text, lines joined by '\n' (with a trailing newline). A model nested as a
/// layer is one row, with its class and its parameters, as Keras prints it.
pub fn summary(model: &Model) -> String {
    render(model, false)
}

/// The summary with each nested model's layers printed inside a box under its row, as
/// `summary(expand_nested=True)` draws them (`|` borders, `¯` box edges, one `|` per level).
pub fn expanded_summary(model: &Model) -> String {
    render(model, true)
}

fn render(model: &Model, expand_nested: bool) -> String {
    let rows = summary_rows(model, "");
    let sequential_like = is_sequential_like(&rows);
    let table = if sequential_like {
        Table { line_length: 65, positions: fractions(65, &[0.45, 0.85, 1.0]), connections: false, expand_nested }
    } else {
        Table { line_length: 98, positions: fractions(98, &[0.33, 0.55, 0.67, 1.0]), connections: true, expand_nested }
    };
    let header = ["Layer (type)", "Output Shape", "Param #", "Connected to"];
    let mut out = Vec::new();
    out.push(format!("Model: \"{}\"", model.name));
    out.push("_".repeat(table.line_length));
    out.push(row(&header[..table.positions.len()].iter().map(|s| s.to_string()).collect::<Vec<_>>(), &table.positions));
    out.push("=".repeat(table.line_length));
    table.print_rows(model, &rows, 0, &mut out);
    out.push("=".repeat(table.line_length));
    let (total, trainable, non_trainable) = model.param_counts();
    out.push(format!("Total params: {}", thousands(total)));
    out.push(format!("Trainable params: {}", thousands(trainable)));
    out.push(format!("Non-trainable params: {}", thousands(non_trainable)));
    out.push("_".repeat(table.line_length));
    out.join("\n") + "\n"
}

/// The table's layout: its width, column positions, whether it has "Connected to".
struct Table {
    line_length: usize,
    positions: Vec<usize>,
    connections: bool,
    expand_nested: bool,
}

impl Table {
    /// `rows` at nesting `level`, each followed by a rule (none after the last: the caller
    /// closes the table or the box), and, when expanding, its nested model's box.
    fn print_rows(&self, model: &Model, rows: &[SummaryRow], level: usize, out: &mut Vec<String>) {
        for (i, summary_row) in rows.iter().enumerate() {
            let connections: Vec<String> = summary_row.inbound.iter().map(|&r| format!("{}[0][0]", rows[r].name)).collect();
            let mut fields = vec![
                format!("{} ({})", summary_row.name, summary_row.class),
                keras_shape(&summary_row.output_shape),
                summary_row.params.to_string(),
            ];
            if self.connections {
                fields.push(connections.first().cloned().unwrap_or_default());
            }
            out.push(self.nested_row(&fields, level));
            if self.connections {
                for connection in connections.iter().skip(1) {
                    out.push(self.nested_row(&[String::new(), String::new(), String::new(), connection.clone()], level));
                }
            }
            if let Some(path) = summary_row.nested.as_deref().filter(|_| self.expand_nested) {
                out.push(self.border(level + 1, '¯'));
                self.print_rows(model, &summary_rows(model, path), level + 1, out);
                out.push(self.border(level, '¯'));
            }
            if i + 1 < rows.len() {
                out.push(self.border(level, '_'));
            }
        }
    }

    /// A row inside `level` boxes: `|` on each side per level (and a space inside, as Keras).
    fn nested_row(&self, fields: &[String], level: usize) -> String {
        let mut fields = fields.to_vec();
        if level > 0 {
            fields[0] = format!("{} {}", "|".repeat(level), fields[0]);
        }
        let line: String = row(&fields, &self.positions).chars().take(self.line_length - level).collect();
        line + &"|".repeat(level)
    }

    /// A rule of `fill` inside `level` boxes.
    fn border(&self, level: usize, fill: char) -> String {
        let bars = "|".repeat(level);
        format!("{bars}{}{bars}", fill.to_string().repeat(self.line_length - 2 * level))
    }
}

/// One row of the summary: a layer of the model, or a whole model nested in it.
struct SummaryRow {
    name: String,
    class: String,
    output_shape: Vec<i64>,
    params: i64,
    /// The rows it reads, in order.
    inbound: Vec<usize>,
    /// For a nested model's row: its path.
    nested: Option<String>,
}

/// The layers of the model at `scope` (`""`: the outer model): each of its own layers, and each
/// model nested in it as one row (its layers together, its output the last of them in Keras's
/// order). A nested model's rows start with its input layers, which the inlined graph does not
/// keep: the tensors from outside its scope are matched to them in order of first use.
fn summary_rows(model: &Model, scope: &str) -> Vec<SummaryRow> {
    let mut rows: Vec<SummaryRow> = Vec::new();
    let input_names = model.nested_models().iter().find(|n| n.path == scope).map_or(&[][..], |n| n.input_names.as_slice());
    for name in input_names {
        rows.push(SummaryRow {
            name: name.clone(),
            class: "InputLayer".into(),
            output_shape: Vec::new(),
            params: 0,
            inbound: Vec::new(),
            nested: None,
        });
    }
    let mut inputs_used = 0;
    let mut row_of: Vec<Option<usize>> = vec![None; model.layers().len()];
    let mut row_of_nested: Vec<(&str, usize)> = Vec::new();
    for (i, node) in model.layers().iter().enumerate() {
        let holder = match placement(model.nested_models(), scope, &node.name) {
            Placement::Outside => continue,
            Placement::In(nested) => Some(nested),
            Placement::Direct => None,
        };
        let existing = holder.and_then(|nested| row_of_nested.iter().find(|(path, _)| *path == nested.path).map(|&(_, r)| r));
        let r = match existing {
            Some(r) => r,
            None => {
                let (name, class) = match holder {
                    Some(nested) => (nested.name().to_string(), nested.class_name.clone()),
                    None => (local_name(scope, &node.name).to_string(), node.layer.class_name().to_string()),
                };
                let nested = holder.map(|n| n.path.clone());
                rows.push(SummaryRow { name, class, output_shape: Vec::new(), params: 0, inbound: Vec::new(), nested });
                if let Some(nested) = holder {
                    row_of_nested.push((&nested.path, rows.len() - 1));
                }
                rows.len() - 1
            }
        };
        row_of[i] = Some(r);
        rows[r].output_shape = node.output_shape.clone();
        rows[r].params += node.param_count();
        for id in &node.inbound {
            let from = match row_of[id.0] {
                Some(from) => from,
                // From outside the scope: the nested model's next input layer.
                None if inputs_used < input_names.len() => {
                    row_of[id.0] = Some(inputs_used);
                    rows[inputs_used].output_shape = model.layers()[id.0].output_shape.clone();
                    inputs_used += 1;
                    inputs_used - 1
                }
                None => continue,
            };
            if from != r && !rows[r].inbound.contains(&from) {
                rows[r].inbound.push(from);
            }
        }
    }
    rows
}

/// Keras's test: a graph is printed as a chain when no layer has several inputs and no output
/// feeds several layers.
fn is_sequential_like(rows: &[SummaryRow]) -> bool {
    let mut readers = vec![0usize; rows.len()];
    for summary_row in rows {
        if summary_row.inbound.len() > 1 {
            return false;
        }
        for &r in &summary_row.inbound {
            readers[r] += 1;
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
