//! The evaluation report against scikit-learn: the same `classification_report` text byte for
//! byte, the same numbers in its dictionary form, the same confusion matrix and top-k accuracies.

mod common;

use std::process::Command;

use serde_json::{json, Value};

use common::{keras_python, repo_root, scratch_dir};
use keras_tch::rng::SplitMix64;
use keras_tch::train::report::EvaluationReport;

#[test]
fn reports_are_scikit_learns() {
    let Some(python) = keras_python() else { return };
    // Five classes: 'never_predicted' gets no prediction (precision 0/0), 'absent' no sample
    // (recall 0/0); a long name sets the column width; scores are noisy but informative.
    let names: Vec<String> = ["cat", "dog", "a_rather_long_class_name", "never_predicted", "absent"].map(String::from).to_vec();
    let mut rng = SplitMix64::new(11);
    let (mut y_true, mut scores) = (Vec::new(), Vec::new());
    for i in 0..203 {
        let truth = i % 4;
        let mut row: Vec<f32> = (0..5).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        row[truth] += 0.6;
        row[3] = row[3].min(0.05);
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
        y_true.push(truth);
        scores.extend(row);
    }
    let ks = [2, 3];
    let dir = scratch_dir("report");
    let input = dir.join("in.json");
    let rows: Vec<&[f32]> = scores.chunks(5).collect();
    std::fs::write(&input, json!({ "y_true": y_true, "y_score": rows, "target_names": names, "k": ks }).to_string()).unwrap();
    let output = Command::new(python).arg(repo_root().join("scripts/sklearn_report.py")).arg(&input).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let sklearn: Value = serde_json::from_slice(&output.stdout).unwrap();

    let files: Vec<String> = (0..y_true.len()).map(|i| format!("img{i}.jpg")).collect();
    let report = EvaluationReport::new(&names, &y_true, &scores, &ks, Some(&files), 3).unwrap();
    assert_eq!(report.classification_report(2), sklearn["text"].as_str().unwrap());
    let ours = report.to_json();
    let close = |a: &Value, b: &Value, what: &str| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= 1e-12, "{what}: {a} vs scikit-learn's {b}");
    };
    for (key, theirs) in sklearn["dict"].as_object().unwrap() {
        let mine = &ours["classification_report"][key];
        match theirs {
            Value::Object(fields) => {
                for (field, value) in fields {
                    close(&mine[field], value, &format!("{key} {field}"));
                }
            }
            value => close(mine, value, key),
        }
    }
    assert_eq!(ours["confusion_matrix"], sklearn["confusion"]);
    for k in ks {
        close(&ours["top_k_accuracy"][k.to_string()], &sklearn["top_k"][k.to_string()], &format!("top-{k} accuracy"));
    }
    // --class-weight balanced is scikit-learn's compute_class_weight("balanced").
    let labels: Vec<i64> = y_true.iter().map(|&c| c as i64).collect();
    let balanced = keras_tch::train::fit::balanced_class_weights(&labels).unwrap();
    for (class, weight) in sklearn["balanced"].as_object().unwrap() {
        close(&json!(balanced[class.parse::<usize>().unwrap()]), weight, &format!("balanced weight of class {class}"));
    }
    // The mistakes: misclassified files only, most confident first.
    let mistakes = ours["most_confident_mistakes"].as_array().unwrap();
    assert_eq!(mistakes.len(), 3);
    let confidences: Vec<f64> = mistakes.iter().map(|m| m["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{confidences:?}");
    assert!(mistakes.iter().all(|m| m["true"] != m["predicted"]));

    report.save(&dir).unwrap();
    let png = image::open(dir.join("confusion_matrix.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);
}
