//! An evaluation report as scikit-learn gives it: `classification_report` (per-class precision,
//! recall, F1 and support, accuracy, macro and weighted averages — the same numbers and the same
//! text layout), `confusion_matrix`, `top_k_accuracy_score`, and, where the samples are files,
//! the most confidently misclassified ones. Written as text, JSON and a confusion-matrix heatmap.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;
use serde_json::{json, Map, Value};

use super::curves::font_available;
use crate::io::atomic::{write_atomically, write_bytes_atomically};

/// One class's (or an average's) row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// A misclassified sample: its name (file), true and predicted class, and the probability given
/// to the wrong class.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    pub name: String,
    pub true_class: usize,
    pub predicted: usize,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationReport {
    pub class_names: Vec<String>,
    pub per_class: Vec<Scores>,
    pub accuracy: f64,
    pub macro_avg: Scores,
    pub weighted_avg: Scores,
    /// Rows: true class; columns: predicted class.
    pub confusion: Vec<Vec<usize>>,
    /// (k, top-k accuracy) for the k asked for.
    pub top_k: Vec<(usize, f64)>,
    /// The most confident mistakes, most confident first.
    pub mistakes: Vec<Mistake>,
}

/// scikit-learn's precision/recall/F1 with `zero_division` 0: an undefined ratio is 0.
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

impl EvaluationReport {
    /// The report for `scores` (N × classes probabilities, row-major) against `y_true`; the
    /// prediction is the highest score (the first of equal ones, as numpy's argmax).
    /// `names` (one per sample, e.g. file paths) enables the list of mistakes.
    pub fn new(
        class_names: &[String],
        y_true: &[usize],
        scores: &[f32],
        top_k: &[usize],
        names: Option<&[String]>,
        mistakes: usize,
    ) -> Result<Self> {
        let classes = class_names.len();
        if classes == 0 || scores.len() != y_true.len() * classes {
            bail!("evaluation report: {} scores for {} samples of {classes} classes", scores.len(), y_true.len());
        }
        if let Some(&bad) = y_true.iter().find(|&&c| c >= classes) {
            bail!("evaluation report: true class {bad} outside the {classes} classes");
        }
        if let Some(names) = names.filter(|n| n.len() != y_true.len()) {
            bail!("evaluation report: {} sample names for {} samples", names.len(), y_true.len());
        }
        let rows: Vec<&[f32]> = scores.chunks(classes).collect();
        let argmax = |row: &[f32]| row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
        let y_pred: Vec<usize> = rows.iter().map(|row| argmax(row)).collect();

        let mut confusion = vec![vec![0usize; classes]; classes];
        for (&t, &p) in y_true.iter().zip(&y_pred) {
            confusion[t][p] += 1;
        }
        let per_class: Vec<Scores> = (0..classes)
            .map(|c| {
                let true_positive = confusion[c][c] as f64;
                let predicted = (0..classes).map(|r| confusion[r][c]).sum::<usize>() as f64;
                let support = confusion[c].iter().sum::<usize>();
                // scikit-learn's F1 from the counts: 2·tp / (true + predicted).
                let f1 = ratio(2.0 * true_positive, support as f64 + predicted);
                Scores { precision: ratio(true_positive, predicted), recall: ratio(true_positive, support as f64), f1, support }
            })
            .collect();
        let total = y_true.len();
        let average = |weight: &dyn Fn(&Scores) -> f64, norm: f64| Scores {
            precision: per_class.iter().map(|s| weight(s) * s.precision).sum::<f64>() / norm,
            recall: per_class.iter().map(|s| weight(s) * s.recall).sum::<f64>() / norm,
            f1: per_class.iter().map(|s| weight(s) * s.f1).sum::<f64>() / norm,
            support: total,
        };
        let macro_avg = average(&|_| 1.0, classes as f64);
        let weighted_avg = if total == 0 {
            Scores { precision: 0.0, recall: 0.0, f1: 0.0, support: 0 }
        } else {
            average(&|s| s.support as f64, total as f64)
        };
        let correct = y_true.iter().zip(&y_pred).filter(|(t, p)| t == p).count();

        let top_k = top_k
            .iter()
            .map(|&k| {
                // scikit-learn: the true class is among the k highest scores, equal scores
                // ranked by the higher class index first (its stable argsort, reversed).
                let ahead = |row: &[f32], t: usize| row.iter().enumerate().filter(|&(i, &v)| v > row[t] || (v == row[t] && i > t)).count();
                let hits = rows.iter().zip(y_true).filter(|(row, &t)| ahead(row, t) < k).count();
                (k, ratio(hits as f64, total as f64))
            })
            .collect();

        let mut wrong: Vec<Mistake> = match names {
            Some(names) => (0..total)
                .filter(|&i| y_pred[i] != y_true[i])
                .map(|i| Mistake {
                    name: names[i].clone(),
                    true_class: y_true[i],
                    predicted: y_pred[i],
                    confidence: f64::from(rows[i][y_pred[i]]),
                })
                .collect(),
            None => Vec::new(),
        };
        wrong.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        wrong.truncate(mistakes);

        Ok(Self {
            class_names: class_names.to_vec(),
            per_class,
            accuracy: ratio(correct as f64, total as f64),
            macro_avg,
            weighted_avg,
            confusion,
            top_k,
            mistakes: wrong,
        })
    }

    /// scikit-learn's `classification_report(..., digits=digits)` text, byte for byte.
    pub fn classification_report(&self, digits: usize) -> String {
        let width = self.class_names.iter().map(|n| n.chars().count()).chain([12, digits]).max().unwrap_or(12);
        let mut text = format!("{:>width$}  {:>9} {:>9} {:>9} {:>9}\n\n", "", "precision", "recall", "f1-score", "support");
        let row = |name: &str, s: &Scores| {
            format!("{name:>width$}  {:>9.digits$} {:>9.digits$} {:>9.digits$} {:>9}\n", s.precision, s.recall, s.f1, s.support)
        };
        for (name, scores) in self.class_names.iter().zip(&self.per_class) {
            text.push_str(&row(name, scores));
        }
        text.push('\n');
        text.push_str(&format!("{:>width$}  {:>9} {:>9} {:>9.digits$} {:>9}\n", "accuracy", "", "", self.accuracy, self.macro_avg.support));
        text.push_str(&row("macro avg", &self.macro_avg));
        text.push_str(&row("weighted avg", &self.weighted_avg));
        text
    }

    /// The confusion matrix as a table with class names (rows: true, columns: predicted).
    pub fn confusion_table(&self) -> String {
        let label_width = self.class_names.iter().map(|n| n.chars().count()).max().unwrap_or(1);
        let widths: Vec<usize> = (0..self.class_names.len())
            .map(|c| {
                self.confusion.iter().map(|row| row[c].to_string().len()).chain([self.class_names[c].chars().count()]).max().unwrap_or(1)
            })
            .collect();
        let mut text = format!("Confusion matrix (rows: true class, columns: predicted)\n{:>label_width$}", "");
        for (name, width) in self.class_names.iter().zip(&widths) {
            text.push_str(&format!("  {name:>width$}"));
        }
        text.push('\n');
        for (name, row) in self.class_names.iter().zip(&self.confusion) {
            text.push_str(&format!("{name:>label_width$}"));
            for (count, width) in row.iter().zip(&widths) {
                text.push_str(&format!("  {count:>width$}"));
            }
            text.push('\n');
        }
        text
    }

    /// scikit-learn's `output_dict=True` form, plus the confusion matrix, top-k accuracies and mistakes.
    pub fn to_json(&self) -> Value {
        let scores = |s: &Scores| json!({ "precision": s.precision, "recall": s.recall, "f1-score": s.f1, "support": s.support });
        let mut report = Map::new();
        for (name, s) in self.class_names.iter().zip(&self.per_class) {
            report.insert(name.clone(), scores(s));
        }
        report.insert("accuracy".into(), json!(self.accuracy));
        report.insert("macro avg".into(), scores(&self.macro_avg));
        report.insert("weighted avg".into(), scores(&self.weighted_avg));
        json!({
            "classification_report": report,
            "class_names": self.class_names,
            "confusion_matrix": self.confusion,
            "top_k_accuracy": self.top_k.iter().map(|(k, a)| (k.to_string(), json!(a))).collect::<Map<String, Value>>(),
            "most_confident_mistakes": self.mistakes.iter().map(|m| json!({
                "file": m.name, "true": self.class_names[m.true_class], "predicted": self.class_names[m.predicted], "confidence": m.confidence
            })).collect::<Vec<_>>(),
        })
    }

    /// Everything a person reads: the classification report, the confusion matrix, top-k
    /// accuracies and the most confident mistakes.
    pub fn text(&self) -> String {
        let mut text = self.classification_report(2);
        text.push('\n');
        text.push_str(&self.confusion_table());
        for (k, accuracy) in &self.top_k {
            text.push_str(&format!("\ntop-{k} accuracy: {accuracy:.4}"));
        }
        if !self.top_k.is_empty() {
            text.push('\n');
        }
        if !self.mistakes.is_empty() {
            text.push_str("\nMost confidently misclassified:\n");
            for m in &self.mistakes {
                text.push_str(&format!(
                    "  {:.4} {} (true: {}, predicted: {})\n",
                    m.confidence, m.name, self.class_names[m.true_class], self.class_names[m.predicted]
                ));
            }
        }
        text
    }

    /// `report.txt`, `report.json` and `confusion_matrix.png` in `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| anyhow!("creating {}: {e}", dir.display()))?;
        write_bytes_atomically(&dir.join("report.txt"), self.text().as_bytes())?;
        write_bytes_atomically(&dir.join("report.json"), serde_json::to_string_pretty(&self.to_json())?.as_bytes())?;
        self.save_heatmap(&dir.join("confusion_matrix.png"))
    }

    /// The confusion matrix as a heatmap with class names and counts (rows: true class).
    pub fn save_heatmap(&self, path: &Path) -> Result<()> {
        let classes = self.class_names.len();
        let cell = (560 / classes.max(1)).clamp(24, 80) as u32;
        let margin = if font_available() { 150 } else { 20 };
        let size = (margin + cell * classes as u32 + 20, margin + cell * classes as u32 + 20);
        let most = self.confusion.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
        write_atomically(path, |temp| {
            let root = BitMapBackend::new(temp, size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
            let labels = font_available();
            for (r, row) in self.confusion.iter().enumerate() {
                for (c, &count) in row.iter().enumerate() {
                    let shade = 1.0 - count as f64 / most;
                    let color = RGBColor((255.0 * shade) as u8, (255.0 * (0.5 + 0.5 * shade)) as u8, 255);
                    let (x, y) = (margin as i32 + (c as u32 * cell) as i32, margin as i32 + (r as u32 * cell) as i32);
                    root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], color.filled())).map_err(|e| anyhow!("{e}"))?;
                    if labels {
                        let ink = if shade < 0.5 { WHITE } else { BLACK };
                        let style = ("sans-serif", (cell / 3).max(10)).into_font().color(&ink);
                        root.draw_text(&count.to_string(), &style, (x + 4, y + cell as i32 / 3)).map_err(|e| anyhow!("{e}"))?;
                    }
                }
            }
            if labels {
                let style = ("sans-serif", 14).into_font().color(&BLACK);
                root.draw_text("true \u{2193}  predicted \u{2192}", &style, (6, 6)).map_err(|e| anyhow!("{e}"))?;
                for (i, name) in self.class_names.iter().enumerate() {
                    let offset = margin as i32 + (i as u32 * cell) as i32 + cell as i32 / 3;
                    let short: String = name.chars().take(18).collect();
                    root.draw_text(&short, &style, (6, offset)).map_err(|e| anyhow!("{e}"))?;
                    let vertical = style.clone().transform(FontTransform::Rotate270);
                    root.draw_text(&short, &vertical, (offset, margin as i32 - 6)).map_err(|e| anyhow!("{e}"))?;
                }
            }
            root.present().map_err(|e| anyhow!("{e}"))?;
            Ok(())
        })
    }
}
