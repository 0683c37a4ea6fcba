//! `keras-tch bench` reports what it says it reports (no timing is asserted: speed is measured
//! by the benchmark, not by tests).

use serde_json::Value;

fn bench_only(workload: &str, precision: &str) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["bench", "--only", workload, "--repeats", "1", "--precision", precision])
        .output()
        .unwrap();
    assert!(output.status.success(), "bench --only {workload} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The course predict workload in both precisions: a positive time, GFLOP/s and peak memory
/// under the documented keys (bf16's with the `_bf16` suffix, so reports merge side by side).
#[test]
fn bench_reports_its_keys_in_both_precisions() {
    for (precision, suffix) in [("fp32", ""), ("bf16", "_bf16")] {
        let report = bench_only("course-predict", precision);
        for key in ["course_predict_b32_s", "course_predict_gflops", "course_predict_peak_rss_mb"] {
            let value = report[format!("{key}{suffix}")].as_f64();
            assert!(value.is_some_and(|v| v > 0.0), "{precision}: {key}{suffix} missing or not positive in {report}");
        }
        assert_eq!(report.as_object().unwrap().len(), 3, "{precision}: unexpected keys in {report}");
    }
}
