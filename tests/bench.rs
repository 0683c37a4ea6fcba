//! `keras-tch bench` reports what it says it reports (no timing is asserted: speed is measured
//! by the benchmark, not by tests).

mod common;

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
/// under the documented keys (bf16's with the `_bf16` suffix, so reports merge side by side),
/// and its memory in huge pages.
#[test]
fn bench_reports_its_keys_in_both_precisions() {
    for (precision, suffix) in [("fp32", ""), ("bf16", "_bf16")] {
        let report = bench_only("course-predict", precision);
        for key in ["course_predict_b32_s", "course_predict_gflops", "course_predict_peak_rss_mb"] {
            let value = report[format!("{key}{suffix}")].as_f64();
            assert!(value.is_some_and(|v| v > 0.0), "{precision}: {key}{suffix} missing or not positive in {report}");
        }
        assert!(report[format!("course_predict_huge_pages_mb{suffix}")].is_number(), "{precision}: no huge pages count in {report}");
        assert_eq!(report.as_object().unwrap().len(), 4, "{precision}: unexpected keys in {report}");
    }
}

/// Where the kernel hands out huge pages on request (`[madvise]`, Debian's and Ubuntu's
/// default), the inference workloads ask for them (`runtime::back_large_buffers_with_huge_pages`)
/// and training ones do not; `THP_MEM_ALLOC_ENABLE=0` turns them off.
#[test]
fn inference_workloads_ask_for_huge_pages_and_training_ones_do_not() {
    let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !setting.contains("[madvise]") {
        common::skipped(&format!("the kernel does not hand out huge pages on request here ({})", setting.trim()), "nothing to check");
        return;
    }
    let huge_pages = |workload: &str, switch: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keras-tch"));
        command.args(["bench", "--only", workload, "--repeats", "1"]);
        if let Some(value) = switch {
            command.env("THP_MEM_ALLOC_ENABLE", value);
        } else {
            command.env_remove("THP_MEM_ALLOC_ENABLE");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "bench --only {workload} failed: {}", String::from_utf8_lossy(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        report[format!("{}_huge_pages_mb", workload.replace('-', "_"))].as_f64().unwrap()
    };
    assert!(huge_pages("course-predict", None) > 0.0, "the course predict got no huge pages");
    assert_eq!(huge_pages("course-predict", Some("0")), 0.0, "THP_MEM_ALLOC_ENABLE=0 did not keep 4 KiB pages");
    assert_eq!(huge_pages("happy-epoch", None), 0.0, "a training workload got huge pages");
}
