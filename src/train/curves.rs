//! Training curves as a PNG: loss and accuracy per epoch, training and validation, side by side —
//! what a person looks at after `fit` (Keras users plot `history.history` with matplotlib).
//!
//! Text is drawn with DejaVu Sans, which `scripts/setup.sh` installs from Debian
//! (`fonts-dejavu-core`); without it the curves are drawn without labels and a note says so.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::history::History;
use crate::io::atomic::write_atomically;

const FONT_PATHS: &[&str] = &["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf"];

/// Register DejaVu Sans as plotters' "sans-serif" once; false when no font file is found.
pub(crate) fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        FONT_PATHS.iter().any(|path| match std::fs::read(path) {
            // plotters keeps the font for the life of the process.
            Ok(bytes) => plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice())).is_ok(),
            Err(_) => false,
        })
    })
}

/// Draw `history` into `path` (PNG, 1000×400), atomically.
pub fn save_curves(history: &History, path: &Path) -> Result<()> {
    let labels = font_available();
    if !labels {
        eprintln!("note: no DejaVu font found ({}); the curves are drawn without text (run scripts/setup.sh)", FONT_PATHS[0]);
    }
    write_atomically(path, |temp| {
        let root = BitMapBackend::new(temp, (1000, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
        let panels = root.split_evenly((1, 2));
        for (panel, metric) in panels.iter().zip(["loss", "accuracy"]) {
            draw_panel(panel, history, metric, labels)?;
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
        Ok(())
    })
}

fn draw_panel(area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, history: &History, metric: &str, labels: bool) -> Result<()> {
    let series: Vec<(String, Vec<f64>, RGBColor)> = [(metric.to_string(), BLUE), (format!("val_{metric}"), RED)]
        .into_iter()
        .filter_map(|(key, color)| history.get(&key).map(|values| (key, values, color)))
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let epochs = history.epochs.len().max(2) as f64;
    // At most one label per whole epoch (plotters would otherwise label 1.0, 1.1, … 2.0).
    let x_labels = history.epochs.len().clamp(2, 12);
    let values = series.iter().flat_map(|(_, v, _)| v.iter().copied()).filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((high - low) * 0.1).max(1e-3);
    let mut builder = ChartBuilder::on(area);
    builder.margin(15).x_label_area_size(if labels { 35 } else { 5 }).y_label_area_size(if labels { 55 } else { 5 });
    if labels {
        builder.caption(metric, ("sans-serif", 22));
    }
    let mut chart = builder.build_cartesian_2d(1.0..epochs, (low - pad)..(high + pad)).map_err(|e| anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("epoch").x_labels(x_labels).x_label_formatter(&epoch_label);
    if !labels {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;
    for (name, values, color) in series {
        let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(i, v)| ((i + 1) as f64, *v)).collect();
        // A marker per epoch: a one-epoch run has no line to draw, only its points.
        chart.draw_series(points.iter().map(|&point| Circle::new(point, 3, color.filled()))).map_err(|e| anyhow!("{e}"))?;
        let line = chart.draw_series(LineSeries::new(points, color.stroke_width(2))).map_err(|e| anyhow!("{e}"))?;
        if labels {
            line.label(name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
    }
    if labels {
        // Loss falls and accuracy rises: keep the legend out of the curves' way.
        let corner = if metric == "loss" { SeriesLabelPosition::UpperRight } else { SeriesLabelPosition::LowerRight };
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// A tick label on the epoch axis: whole epochs only, blank between them.
fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_axis_labels_whole_epochs_only() {
        let labels: Vec<String> = [1.0, 1.1, 1.5, 2.0, 2.9999999, 3.0].iter().map(epoch_label).collect();
        assert_eq!(labels, ["1", "", "", "2", "3", "3"]);
    }

    /// Validation curves (red) are drawn beside the training ones (blue) in both panels, even
    /// for a run of one epoch.
    #[test]
    fn validation_curves_are_drawn_in_both_panels() {
        for epochs in [1, 3] {
            let mut history = History::default();
            for epoch in 0..epochs {
                let e = epoch as f64;
                history.push(&[
                    ("loss", 1.0 - 0.2 * e),
                    ("accuracy", 0.5 + 0.1 * e),
                    ("val_loss", 1.2 - 0.1 * e),
                    ("val_accuracy", 0.4 + 0.1 * e),
                ]);
            }
            let dir = std::env::temp_dir().join(format!("keras-tch-curves-{}-{epochs}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("curves.png");
            save_curves(&history, &path).unwrap();
            let png = image::open(&path).unwrap().to_rgb8();
            std::fs::remove_dir_all(&dir).unwrap();
            for (panel, columns) in [("loss", 0..500), ("accuracy", 500..1000)] {
                let count = |color: [u8; 3]| {
                    columns.clone().flat_map(|x| (0..400).map(move |y| (x, y))).filter(|&(x, y)| png.get_pixel(x, y).0 == color).count()
                };
                assert!(count([255, 0, 0]) > 60, "{epochs} epoch(s): no validation curve in the {panel} panel");
                assert!(count([0, 0, 255]) > 60, "{epochs} epoch(s): no training curve in the {panel} panel");
            }
        }
    }
}
