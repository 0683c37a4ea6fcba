//! `keras-tch bench`: the benchmark workloads, each in its own process (so peak memory is its
//! own), reported as a table with achieved GFLOP/s beside the machine's fp32 peak, or as one
//! JSON object. Speed is measured here, never asserted in tests.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use tch::Kind;

use keras_tch::bench::machine::{matmul_gflops, Machine};
use keras_tch::bench::{run_workload, BenchSettings, WORKLOADS};
use keras_tch::data::loader::Loading;
use keras_tch::device::DeviceChoice;
use keras_tch::layers::autocast::Precision;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Where to compute: cpu, cuda, cuda:N or auto (CUDA when libtorch sees a device)
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Timed repetitions per workload (after warm-up); the median is reported
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Run just this workload, in this process (what the parent runs in each child)
    #[arg(long, value_parser = WORKLOADS)]
    pub only: Option<String>,
    /// Precision of convolutions and matrix multiplies (bf16: mixed precision as torch's
    /// autocast; the JSON keys then end in `_bf16`)
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// folder-epoch's photos, a folder with one sub-folder per class (default: 320 generated
    /// JPEGs; scripts/make_photo_folder.py writes larger sets)
    #[arg(long, value_name = "DIR")]
    pub folder: Option<PathBuf>,
    /// folder-epoch's decoding threads (default: as train's --workers)
    #[arg(long)]
    pub workers: Option<usize>,
    /// folder-epoch's read-ahead depth, in batches
    #[arg(long, default_value_t = Loading::default().prefetch, value_parser = super::value_parsers::at_least_one_usize)]
    pub prefetch: usize,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    // Each process its own private scratch folder (never a predictable path in /tmp).
    let scratch_folder = keras_tch::io::atomic::PrivateFolder::new("bench")?;
    let scratch = scratch_folder.path().to_path_buf();
    if let Some(name) = &args.only {
        let device = super::device_arg::resolve(args.device)?;
        let settings = BenchSettings {
            device,
            precision: args.precision,
            repeats: args.repeats,
            folder: args.folder.clone(),
            loading: Loading { workers: args.workers.unwrap_or(Loading::for_device(device).workers), prefetch: args.prefetch },
        };
        let report = run_workload(name, &settings, &scratch)?;
        println!("{report}");
        return Ok(());
    }
    let machine = Machine::detect();
    let mut report = json!({
        "machine": machine.describe(),
        "device": args.device.to_string(),
        "threads": tch::get_num_threads(),
        "precision": args.precision.name(),
        "fp32_peak_gflops": machine.fp32_peak_gflops(),
        "fp32_peak_formula": machine.fp32_peak_formula(),
        "matmul_4096_gflops": matmul_gflops(4096, Kind::Float, 3),
        "matmul_4096_gflops_bf16": if machine.bf16 { json!(matmul_gflops(4096, Kind::BFloat16, 3)) } else { Value::Null },
    });
    let exe = std::env::current_exe()?;
    for name in WORKLOADS {
        if !args.json {
            eprintln!("running {name} ...");
        }
        let output = Command::new(&exe)
            .args(["bench", "--only", name, "--device", &args.device.to_string(), "--repeats", &args.repeats.to_string()])
            .args(["--precision", args.precision.name()])
            .args(["--prefetch", &args.prefetch.to_string()])
            .args(args.workers.iter().flat_map(|workers| ["--workers".to_string(), workers.to_string()]))
            .args(args.folder.iter().flat_map(|folder| [std::ffi::OsStr::new("--folder"), folder.as_os_str()]))
            .output()
            .with_context(|| format!("starting the {name} workload"))?;
        if !output.status.success() {
            bail!("workload {name} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let child: Value = serde_json::from_slice(&output.stdout).with_context(|| format!("reading {name}'s report"))?;
        for (key, value) in child.as_object().context("a JSON object")? {
            report[key] = value.clone();
        }
    }
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Value) {
    let suffix = if r["precision"] == "bf16" { "_bf16" } else { "" };
    let number = |key: &str| r[format!("{key}{suffix}")].as_f64().or(r[key].as_f64()).unwrap_or(f64::NAN);
    println!(
        "{} ({} threads, device {}, precision {})",
        r["machine"].as_str().unwrap_or(""),
        r["threads"],
        r["device"].as_str().unwrap_or(""),
        r["precision"].as_str().unwrap_or("")
    );
    println!(
        "fp32 peak {:.0} GFLOP/s ({}); a 4096³ matmul reaches {:.0} GFLOP/s in {}\n",
        r["fp32_peak_gflops"].as_f64().unwrap_or(f64::NAN),
        r["fp32_peak_formula"].as_str().unwrap_or("?"),
        number("matmul_4096_gflops"),
        r["precision"].as_str().unwrap_or("float32")
    );
    println!("{:<52} {:>12} {:>10} {:>12}", "workload (median)", "result", "GFLOP/s", "peak RSS MB");
    let rows = [
        (
            "course ResNet50 train step, batch 32, 64×64",
            "course_train_step_b32_s",
            "s",
            "course_train_step_gflops",
            "course_train_step_peak_rss_mb",
        ),
        ("course ResNet50 predict, batch 32", "course_predict_b32_s", "s", "course_predict_gflops", "course_predict_peak_rss_mb"),
        (
            "ImageNet ResNet50 predict, batch 1, 224×224",
            "imagenet_predict_b1_img_per_s",
            "img/s",
            "imagenet_predict_b1_gflops",
            "imagenet_predict_peak_rss_mb",
        ),
        (
            "ImageNet ResNet50 predict, batch 8, 224×224",
            "imagenet_predict_b8_img_per_s",
            "img/s",
            "imagenet_predict_b8_gflops",
            "imagenet_predict_peak_rss_mb",
        ),
        ("HappyModel epoch, 600 images, batch 16", "happy_epoch_600_b16_s", "s", "", "happy_epoch_peak_rss_mb"),
        ("load a Keras HDF5 (ImageNet ResNet50 layout)", "load_h5_s", "s", "", "load_h5_peak_rss_mb"),
        ("classify one image, process start to result", "classify_one_image_s", "s", "", ""),
        ("folder of JPEGs, input pipeline alone, 64×64", "folder_epoch_pipeline_img_per_s", "img/s", "", ""),
        ("folder of JPEGs, course ResNet50 epoch, 64×64", "folder_epoch_train_img_per_s", "img/s", "", "folder_epoch_peak_rss_mb"),
    ];
    for (label, key, unit, gflops, rss) in rows {
        let gflops = if gflops.is_empty() { String::new() } else { format!("{:.0}", number(gflops)) };
        let rss = if rss.is_empty() { String::new() } else { format!("{:.0}", number(rss)) };
        println!("{label:<52} {:>8.3} {unit:<5} {gflops:>8} {rss:>12}", number(key));
    }
}
