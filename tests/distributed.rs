//! Data-parallel communication on c10d's Gloo process group, with real processes over
//! loopback: the test hosts the rendezvous store as torchrun's agent does and launches the
//! ranks — this test program again, running `rank_process` — with the variables torchrun sets.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicBool;

use tch::{Device, Kind, Tensor};

use common::{keras_fixture, scratch_dir, shared_data};
use keras_tch::graph::{GraphBuilder, Model};
use keras_tch::io::npy::read_npy;
use keras_tch::io::safetensors::save_safetensors;
use keras_tch::io::{load_model, load_weights, LoadOptions};
use keras_tch::layers::activation::Activation;
use keras_tch::layers::batch_norm::batch_norm;
use keras_tch::layers::conv::conv2d;
use keras_tch::layers::dense::dense;
use keras_tch::layers::init;
use keras_tch::layers::reshape::Flatten;
use keras_tch::train::compile::CompileConfig;
use keras_tch::train::data_parallel::DataParallel;
use keras_tch::train::distributed::{LaunchEnv, ProcessGroup, StoreServer};
use keras_tch::train::fit::{fit, FitOptions};
use keras_tch::train::losses::{CrossEntropyStyle, Loss};
use keras_tch::train::optimizer::{Optimizer, OptimizerConfig};

/// Where rank 0 of a training scenario saves its weights.
const WEIGHTS_OUT: &str = "KERAS_TCH_TEST_DISTRIBUTED_WEIGHTS";
/// The variable naming the scenario a launched rank plays (unset: not a launched rank).
const SCENARIO: &str = "KERAS_TCH_TEST_DISTRIBUTED_SCENARIO";
/// The group's timeout in the ranks: a hang would fail the test rather than stall it.
const GROUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the test waits for its ranks.
const DEADLINE: Duration = Duration::from_secs(90);

/// What one rank did: its exit status and its output.
struct RankRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Processes launched as torchrun launches them, around a rendezvous store this test hosts as
/// torchrun's agent does.
struct Job {
    _store: StoreServer,
    ranks: Vec<(Child, PathBuf, PathBuf)>,
    started: Instant,
}

impl Job {
    /// `world_size` processes, `command(rank)` each, with torchrun's variables (its
    /// `restart_count`-th attempt); their output goes to `dir`.
    fn start(world_size: usize, dir: &Path, restart_count: usize, command: impl Fn(usize) -> Command) -> Job {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let store = StoreServer::serve(listener, GROUP_TIMEOUT).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let mut ranks = Vec::new();
        for rank in 0..world_size {
            let (stdout, stderr) = (dir.join(format!("rank{rank}.out")), dir.join(format!("rank{rank}.err")));
            let child = command(rank)
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", world_size.to_string())
                .env("LOCAL_WORLD_SIZE", world_size.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("TORCHELASTIC_USE_AGENT_STORE", "True")
                .env("TORCHELASTIC_RESTART_COUNT", restart_count.to_string())
                .env("OMP_NUM_THREADS", "1")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).unwrap())
                .stderr(std::fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap();
            ranks.push((child, stdout, stderr));
        }
        Job { _store: store, ranks, started: Instant::now() }
    }

    /// Waits for every rank (failing the test past the deadline).
    fn wait(self) -> (Vec<RankRun>, Duration) {
        let mut runs = Vec::new();
        for (mut child, stdout, stderr) in self.ranks {
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if self.started.elapsed() > DEADLINE {
                    let _ = child.kill();
                    panic!("a rank still runs after {DEADLINE:?}: {}", read(&stderr));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            runs.push(RankRun { status, stdout: read(&stdout), stderr: read(&stderr) });
        }
        (runs, self.started.elapsed())
    }
}

/// Launches `world_size` ranks of this test program playing `scenario`, and waits for them.
fn launch(scenario: &str, world_size: usize, dir: &Path) -> (Vec<RankRun>, Duration) {
    let job = Job::start(world_size, dir, 0, |_| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["rank_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(SCENARIO, scenario)
            .env(WEIGHTS_OUT, dir.join("rank0.safetensors"));
        command
    });
    job.wait()
}

/// Launches 2 ranks playing `scenario` (both must succeed) and loads the weights rank 0 saved
/// into `model`; with the ranks' runs.
fn rank0_model_after(scenario: &str, dir: &Path, mut model: Model) -> (Model, Vec<RankRun>) {
    let (runs, _) = launch(scenario, 2, dir);
    for (rank, run) in runs.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
    }
    load_weights(&mut model, &dir.join("rank0.safetensors"), &LoadOptions::default()).unwrap();
    (model, runs)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn collectives_give_correct_values_across_two_processes() {
    let dir = scratch_dir("distributed-collectives");
    let (runs, _) = launch("collectives", 2, &dir);
    for (rank, run) in runs.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&format!("rank {rank} of 2: collectives ok")), "rank {rank}: {}", run.stdout);
    }
}

#[test]
fn a_rank_that_dies_makes_the_other_fail_with_a_clear_error() {
    let dir = scratch_dir("distributed-one-dies");
    let (runs, elapsed) = launch("one_dies", 2, &dir);
    println!("rank 0, {elapsed:?} after launch: {}", runs[0].stderr.trim());
    assert_eq!(runs[1].status.code(), Some(3), "rank 1 exits as told: {}", runs[1].stderr);
    assert!(!runs[0].status.success(), "rank 0 cannot succeed without rank 1: {}", runs[0].stdout);
    assert!(runs[0].stderr.contains("rank 0 of 2: all-reduce failed"), "rank 0's error: {}", runs[0].stderr);
    assert!(elapsed < DEADLINE, "took {elapsed:?}");
}

/// A small model without BatchNorm: Conv2D(relu) → Flatten → Dense(softmax), seeded.
fn small_model() -> Model {
    init::seed(11);
    let mut g = GraphBuilder::new("small", Device::Cpu);
    let x = g.input(Some("x"), &[6, 6, 3]).unwrap();
    let h = g.conv2d(Some("conv"), conv2d(4, 3).activation(Activation::Relu), x).unwrap();
    let h = g.add(Some("flatten"), Flatten, &[h]).unwrap();
    let y = g.dense(Some("probs"), dense(3).activation(Activation::Softmax), h).unwrap();
    g.finish(&[y]).unwrap()
}

/// 37 samples (so that the last global batch of 8 is short: 5, split 3 + 2) and their one-hot
/// classes; the same in every process.
fn small_data() -> (Tensor, Tensor) {
    tch::manual_seed(5);
    let x = Tensor::randn([37, 6, 6, 3], (Kind::Float, Device::Cpu));
    let labels = Tensor::arange(37, (Kind::Int64, Device::Cpu)).remainder(3);
    (x, labels.one_hot(3).to_kind(Kind::Float))
}

/// Trains `small_model` on `small_data` for 2 epochs of global batches of 8, shuffled, validated
/// on 11 more samples (shared 6 + 5 by two ranks); as one rank of `parallel` when given. Returns
/// the model and its history's losses, validation losses and validation accuracies.
fn train_small(optimizer: OptimizerConfig, parallel: Option<DataParallel>) -> (Model, Vec<f64>) {
    let mut model = small_model();
    let (x, y) = small_data();
    let (x_val, y_val) = (x.narrow(0, 0, 11) * -1.0, y.narrow(0, 0, 11));
    let compile = CompileConfig::for_model(&model, Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
    let options = FitOptions { epochs: 2, batch_size: 8, seed: 3, verbose: 0, data_parallel: parallel, ..Default::default() };
    let validation = Some((&x_val, &y_val));
    let history = fit(&mut model, &compile, &mut Optimizer::new(optimizer), &x, &y, validation, &options, &AtomicBool::new(false)).unwrap();
    let logged = ["loss", "val_loss", "val_accuracy"].iter().flat_map(|key| history.get(key).unwrap().to_vec()).collect();
    (model, logged)
}

const SGD: OptimizerConfig = OptimizerConfig::Sgd { learning_rate: 0.05, momentum: 0.9, nesterov: false };

/// Two ranks with a global batch of 8 take the steps one process takes with batches of 8: the
/// same weights (within float rounding of the split sums), epoch losses and validation results
/// (each rank evaluating its share).
#[test]
fn two_ranks_train_as_one_process_with_the_global_batch() {
    let dir = scratch_dir("distributed-train");
    let (ranks, runs) = rank0_model_after("train", &dir, small_model());
    let (single, single_losses) = train_small(SGD, None);
    let largest =
        single.get_weights().iter().zip(ranks.get_weights()).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    println!("largest weight difference: {largest:e}; one process's history {single_losses:?}; the ranks': {}", runs[0].stdout.trim());
    assert!(largest <= 1e-6, "weights differ by {largest:e}");
    for run in &runs {
        // (libtest prints its "test rank_process ... " on the same line)
        let losses = run.stdout.lines().find_map(|line| line.split_once("losses ")).expect("losses line").1;
        let losses: Vec<f64> = losses.split(',').map(|v| v.parse().unwrap()).collect();
        for (ours, single) in losses.iter().zip(&single_losses) {
            assert!((ours - single).abs() <= 1e-5, "history {losses:?}: {ours} on the ranks, {single} in one process");
        }
    }
}

/// `small_model` with a BatchNormalization after its convolution.
fn small_batch_norm_model() -> Model {
    init::seed(13);
    let mut g = GraphBuilder::new("small_bn", Device::Cpu);
    let x = g.input(Some("x"), &[6, 6, 3]).unwrap();
    let h = g.conv2d(Some("conv"), conv2d(4, 3), x).unwrap();
    let h = g.batch_norm(Some("bn"), batch_norm(), h).unwrap();
    let h = g.add(Some("relu"), Activation::Relu, &[h]).unwrap();
    let h = g.add(Some("flatten"), Flatten, &[h]).unwrap();
    let y = g.dense(Some("probs"), dense(3).activation(Activation::Softmax), h).unwrap();
    g.finish(&[y]).unwrap()
}

const PLAIN_SGD: OptimizerConfig = OptimizerConfig::Sgd { learning_rate: 0.1, momentum: 0.0, nesterov: false };

/// One step on the first 16 samples as a global batch (8 per rank), in order.
fn batch_norm_step(parallel: Option<DataParallel>) -> Model {
    let mut model = small_batch_norm_model();
    let (x, y) = small_data();
    let (x, y) = (x.narrow(0, 0, 16), y.narrow(0, 0, 16));
    let compile = CompileConfig::for_model(&model, Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
    let options = FitOptions { batch_size: 16, shuffle: false, verbose: 0, data_parallel: parallel, ..Default::default() };
    fit(&mut model, &compile, &mut Optimizer::new(PLAIN_SGD), &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
    model
}

/// BatchNorm on two ranks, as Keras's mirrored strategies run it by default: each replica
/// normalises with its own half-batch's statistics, and the moving statistics come out as the
/// mean of the two replicas'. Computed here in one process, half by half, for comparison.
#[test]
fn batch_norm_uses_each_replicas_statistics_and_averages_the_moving_ones() {
    let dir = scratch_dir("distributed-batch-norm");
    let (ranks, _) = rank0_model_after("batch_norm", &dir, small_batch_norm_model());

    // Each half on its own copy of the initial model (BatchNorm's backward needs the moving
    // statistics unchanged until it has run).
    let halves = [small_batch_norm_model(), small_batch_norm_model()];
    let (x, y) = small_data();
    let compile = CompileConfig::for_model(&halves[0], Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
    let mut loss_sum = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for (half, model) in halves.iter().enumerate() {
        let (xh, yh) = (x.narrow(0, 8 * half as i64, 8), y.narrow(0, 8 * half as i64, 8));
        let (probs, logits) = model.forward_with_logits(&[&xh], true).unwrap();
        loss_sum += compile.loss.per_sample(compile.style, &yh, &probs, logits.as_ref()).sum(Kind::Float);
    }
    let loss = loss_sum / 16.0;
    let (first, second) = (halves[0].trainable_variables(), halves[1].trainable_variables());
    let grads = Tensor::run_backward(&[&loss], &first.iter().chain(&second).map(|(_, v)| v).collect::<Vec<_>>(), false, false);
    let summed: Vec<Tensor> = grads[..first.len()].iter().zip(&grads[first.len()..]).map(|(a, b)| a + b).collect();
    Optimizer::new(PLAIN_SGD).apply(&first, &summed).unwrap();
    let model = &halves[0];
    for name in ["moving_mean", "moving_variance"] {
        let (a, b) = (model.keras_weight("bn", name).unwrap(), halves[1].keras_weight("bn", name).unwrap());
        assert!(!a.allclose(&b, 1e-6, 1e-6, false), "the halves' {name} differ, or this test shows nothing");
        model.set_keras_weight("bn", name, &((&a + &b) / 2.0)).unwrap();
    }
    for (layer, weight) in [("bn", "moving_mean"), ("bn", "moving_variance"), ("conv", "kernel"), ("bn", "gamma"), ("probs", "kernel")] {
        let (expected, found) = (model.keras_weight(layer, weight).unwrap(), ranks.keras_weight(layer, weight).unwrap());
        let difference = (&expected - &found).abs().max().double_value(&[]);
        println!("{layer}/{weight}: {difference:e}");
        assert!(difference <= 1e-6, "{layer}/{weight} differs from the half-by-half computation by {difference:e}");
    }
    let largest =
        model.get_weights().iter().zip(ranks.get_weights()).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(largest <= 1e-6, "a weight differs by {largest:e}");
}

/// `small_batch_norm_model`, its BatchNormalization `synchronized` as told, trained 2 epochs of
/// shuffled global batches of 8 on 33 samples — the last global batch is 1 sample, so rank 1's
/// slice of it is empty and it takes part in the step with no samples.
fn train_batch_norm(synchronized: bool, parallel: Option<DataParallel>) -> Model {
    let mut model = small_batch_norm_model();
    model.set_batch_norm_synchronized(synchronized);
    let (x, y) = small_data();
    let (x, y) = (x.narrow(0, 0, 33), y.narrow(0, 0, 33));
    let compile = CompileConfig::for_model(&model, Some(Loss::CategoricalCrossentropy), CrossEntropyStyle::TfKeras).unwrap();
    let options = FitOptions { epochs: 2, batch_size: 8, seed: 4, verbose: 0, data_parallel: parallel, ..Default::default() };
    fit(&mut model, &compile, &mut Optimizer::new(SGD), &x, &y, None, &options, &AtomicBool::new(false)).unwrap();
    model
}

/// Keras's `BatchNormalization(synchronized=True)` on two ranks normalises with the global
/// batch's statistics: the job trains the weights and moving statistics one process trains on
/// the whole batches.
#[test]
fn synchronized_batch_norm_trains_as_one_process_on_the_global_batch() {
    let dir = scratch_dir("distributed-sync-batch-norm");
    let (ranks, _) = rank0_model_after("sync_batch_norm", &dir, small_batch_norm_model());
    let single = train_batch_norm(true, None);
    for (layer, weight) in [("bn", "moving_mean"), ("bn", "moving_variance"), ("bn", "gamma"), ("conv", "kernel"), ("probs", "kernel")] {
        let (expected, found) = (single.keras_weight(layer, weight).unwrap(), ranks.keras_weight(layer, weight).unwrap());
        let difference = (&expected - &found).abs().max().double_value(&[]);
        println!("{layer}/{weight}: {difference:e}");
        assert!(difference <= 1e-5, "{layer}/{weight} differs from one process's by {difference:e}");
    }
    // Per-replica statistics would train other weights: this test can tell the two apart.
    let unsynchronized = {
        let mut model = small_batch_norm_model();
        load_weights(&mut model, &dir.join("rank0-unsynchronized.safetensors"), &LoadOptions::default()).unwrap();
        model
    };
    let gap = (single.keras_weight("bn", "gamma").unwrap() - unsynchronized.keras_weight("bn", "gamma").unwrap()).abs().max();
    assert!(gap.double_value(&[]) > 1e-4, "per-replica statistics train the same gamma ({gap})");
}

/// `keras-tch train` as torchrun runs it, on 2 processes: the job's model, killed mid-run and
/// resumed (`--resume`, torchrun's next attempt), ends with the weights an uninterrupted job
/// ends with; the rank left alone by the kill fails with an error naming itself.
#[test]
fn a_killed_training_job_resumes_to_the_uninterrupted_weights() {
    let Some(train) = shared_data("train_catvnoncat.h5") else { return };
    let dir = scratch_dir("distributed-resume");
    let train = &train;
    let train_command = |run: &str, resume: bool| {
        let folder = dir.join(run);
        move |_rank: usize| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_keras-tch"));
            // 64 images, global batches of 16: 4 steps an epoch, 8 images per rank per step.
            command
                .args(["train", "--arch", "happy", "--epochs", "4", "--limit", "64", "--batch-size", "16", "--verbose", "0"])
                .args(["--device", "cpu", "--distributed-timeout", "30", "--data"])
                .arg(train)
                .arg("--root")
                .arg(&folder)
                .arg("--checkpoint-dir")
                .arg(folder.join("checkpoints"))
                .arg("--save")
                .arg(folder.join("model.h5"));
            if resume {
                command.arg("--resume");
            }
            command
        }
    };
    let (whole, _) = Job::start(2, &dir.join("whole"), 0, train_command("whole", false)).wait();
    for (rank, run) in whole.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
    }
    assert!(whole[0].stdout.contains("Saved "), "rank 0 reports the save: {}", whole[0].stdout);
    assert!(whole[1].stdout.trim().is_empty(), "only rank 0 prints: {}", whole[1].stdout);

    // Killed once the second epoch's checkpoint is written.
    let mut job = Job::start(2, &dir.join("killed"), 0, train_command("killed", false));
    let state = dir.join("killed/checkpoints/checkpoint.json");
    loop {
        assert!(job.started.elapsed() < DEADLINE, "no second checkpoint in {DEADLINE:?}");
        let epoch = std::fs::read_to_string(&state).ok().and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if epoch.is_some_and(|record| record["epoch"].as_u64() >= Some(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    job.ranks[1].0.kill().unwrap(); // SIGKILL
    let (killed, _) = job.wait();
    println!("rank 0 after rank 1 was killed: {}", killed[0].stderr.lines().next().unwrap_or_default());
    assert!(!killed[0].status.success(), "rank 0 cannot finish alone");
    assert!(killed[0].stderr.contains("rank 0 of 2:"), "rank 0's error names it: {}", killed[0].stderr);
    assert!(!dir.join("killed/model.h5").exists(), "no model saved by a failed job");

    let (resumed, _) = Job::start(2, &dir.join("killed"), 1, train_command("killed", true)).wait();
    for (rank, run) in resumed.iter().enumerate() {
        assert!(run.status.success(), "resumed rank {rank}: {}\n{}", run.stdout, run.stderr);
    }
    let (expected, found) =
        (load_model(&dir.join("whole/model.h5"), Device::Cpu).unwrap(), load_model(&dir.join("killed/model.h5"), Device::Cpu).unwrap());
    let largest =
        expected.get_weights().iter().zip(found.get_weights()).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    assert!(largest <= 1e-6, "the resumed job's weights differ from the uninterrupted job's by {largest:e}");
}

/// `classify` and `features` as two processes: each photo is read and run once, by one of
/// them; rank 0 prints (and writes) exactly what one process prints and writes, a file that
/// does not load reported in its place.
#[test]
fn classify_and_features_share_the_photos_out() {
    let Some(fixture) = keras_fixture("imagenet_pipeline") else { return };
    let Some(photo) = shared_data("my_image.jpg") else { return };
    let dir = scratch_dir("distributed-inference");
    let broken = dir.join("broken.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let listed = std::fs::read_to_string(fixture.join("classify.txt")).unwrap();
    let mut photos: Vec<PathBuf> =
        listed.lines().filter(|name| *name != "my_image.jpg").map(|name| fixture.join("images").join(name)).collect();
    photos.insert(1, broken);
    photos.push(photo);
    let keras_tch = |args: &[&str], output: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keras-tch"));
        command.args(args).args(["--batch-size", "2", "--device", "cpu"]);
        if let Some(output) = output {
            command.arg("--output").arg(output);
        }
        command.args(&photos);
        command
    };
    let classify = ["classify", "--json", "--weights", fixture.join("keras_top.h5").to_str().unwrap()].map(String::from);
    let classify: Vec<&str> = classify.iter().map(String::as_str).collect();
    let single = keras_tch(&classify, None).output().unwrap();
    let (ranks, _) = Job::start(2, &dir.join("classify"), 0, |_| keras_tch(&classify, None)).wait();
    // The same lines — images in order, errors, classes — the probabilities within float
    // rounding (the processes batch the photos differently).
    let lines = |text: &str| text.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()).collect::<Vec<_>>();
    let (ours, one) = (lines(&ranks[0].stdout), lines(&String::from_utf8_lossy(&single.stdout)));
    assert_eq!(ours.len(), one.len(), "one line per photo: {}", ranks[0].stdout);
    for (ours, one) in ours.iter().zip(&one) {
        assert_eq!((&ours["image"], &ours["error"]), (&one["image"], &one["error"]));
        let top = |line: &serde_json::Value| line["predictions"].as_array().cloned().unwrap_or_default();
        for (o, e) in top(ours).iter().zip(top(one).iter()) {
            assert_eq!((&o[0], &o[1]), (&e[0], &e[1]), "{}", ours["image"]);
            assert!((o[2].as_f64().unwrap() - e[2].as_f64().unwrap()).abs() <= 1e-5, "{}: {o} vs {e}", ours["image"]);
        }
    }
    assert_eq!(ranks[0].status.code(), single.status.code(), "{}", ranks[0].stderr);
    assert!(ranks[0].stderr.contains("broken.jpg"), "the broken file reported: {}", ranks[0].stderr);
    assert!(ranks[1].stdout.is_empty(), "rank 1 prints nothing: {}", ranks[1].stdout);
    assert_eq!(ranks[1].status.code(), Some(0), "{}", ranks[1].stderr);

    let features = ["features", "--pooling", "avg", "--weights", fixture.join("keras_notop.h5").to_str().unwrap()].map(String::from);
    let features: Vec<&str> = features.iter().map(String::as_str).collect();
    let (one, two) = (dir.join("one.npy"), dir.join("two.npy"));
    let single = keras_tch(&features, Some(&one)).output().unwrap();
    let (ranks, _) = Job::start(2, &dir.join("features"), 0, |_| keras_tch(&features, Some(&two))).wait();
    assert_eq!(ranks[0].status.code(), single.status.code(), "{}", ranks[0].stderr);
    let (expected, found) = (read_npy(&one).unwrap(), read_npy(&two).unwrap());
    assert_eq!(expected.size(), found.size());
    // Float rounding of differently batched convolutions (3e-5 here, features up to 2.5): within
    // the 1e-4 this project holds Keras parity to; a row out of place would differ by ~1.
    let largest = (&expected - &found).abs().max().double_value(&[]);
    assert!(largest <= 1e-4, "features differ by {largest:e}");
    assert_eq!(std::fs::read_to_string(dir.join("one.txt")).unwrap(), std::fs::read_to_string(dir.join("two.txt")).unwrap());
}

/// `transfer` as two processes: the bottleneck features computed half by each, the head trained
/// on them and the top stage fine-tuned data-parallel (its BatchNorm frozen, as transfer
/// fine-tunes) — the model one process trains with the same global batch.
#[test]
fn transfer_on_two_processes_trains_the_model_one_process_trains() {
    let Some(base) = keras_fixture("h5_course_resnet50") else { return };
    let Some(data) = shared_data("train_catvnoncat.h5") else { return };
    let dir = scratch_dir("distributed-transfer");
    let transfer = |run: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keras-tch"));
        command
            .args("transfer --epochs 2 --batch-size 8 --limit 24 --dropout 0 --verbose 0 --device cpu".split(' '))
            .args(["--fine-tune-stages", "1", "--fine-tune-epochs", "1"])
            .arg("--base")
            .arg(base.join("model.h5"))
            .arg("--data")
            .arg(&data)
            .arg("--run-dir")
            .arg(dir.join(run))
            .arg("--save")
            .arg(dir.join(run).join("model.h5"))
            .arg("--report")
            .arg(dir.join(run).join("report"));
        command
    };
    // One thread, as each rank has: Adam turns float rounding differences in gradients near
    // zero into visible ones (one process on 1 and on 2 threads differs by 0.1 in the head).
    let single = transfer("one").env("OMP_NUM_THREADS", "1").output().unwrap();
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    let (ranks, _) = Job::start(2, &dir.join("two-logs"), 0, |_| transfer("two")).wait();
    for (rank, run) in ranks.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
    }
    assert!(ranks[0].stdout.contains("Computed bottleneck features once"), "{}", ranks[0].stdout);
    let (one, two) =
        (load_model(&dir.join("one/model.h5"), Device::Cpu).unwrap(), load_model(&dir.join("two/model.h5"), Device::Cpu).unwrap());
    let largest = one.get_weights().iter().zip(two.get_weights()).map(|(a, b)| (a - b).abs().max().double_value(&[])).fold(0.0, f64::max);
    println!("transfer, 2 processes against 1: largest weight difference {largest:e}");
    assert!(largest <= 1e-5, "the weights differ by {largest:e}");
    // The evaluation on test_catvnoncat.h5 after training, shared out: one process's report.
    let report = |run: &str| -> serde_json::Value { serde_json::from_str(&read(&dir.join(run).join("report/report.json"))).unwrap() };
    assert_eq!(report("two")["confusion_matrix"], report("one")["confusion_matrix"]);
    let accuracy = |stdout: &str| stdout.lines().find(|line| line.starts_with("Test Accuracy")).map(str::to_string);
    assert_eq!(accuracy(&ranks[0].stdout), accuracy(&String::from_utf8_lossy(&single.stdout)));
    assert!(accuracy(&ranks[0].stdout).is_some(), "{}", ranks[0].stdout);
}

/// The real `torchrun --no-python` launching two processes of `keras-tch train
/// --sync-batch-norm`, when a PyTorch
/// install provides it (the benchmark venv of scripts/bench-compare.sh, or `torchrun` on the
/// PATH); skipped otherwise — the tests above, which stand in for its agent, are the required ones.
#[test]
fn torchrun_launches_a_training_job() {
    let Some(train) = shared_data("train_catvnoncat.h5") else { return };
    let cache = std::env::var_os("KERAS_TCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/keras-tch")));
    let cached = cache.map(|cache| cache.join("venv-bench/bin/torchrun"));
    let on_path =
        std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("torchrun")).find(|p| p.exists()));
    let Some(torchrun) = cached.filter(|p| p.exists()).or(on_path) else {
        common::skipped("no torchrun (PyTorch's launcher) here", "scripts/bench-compare.sh installs it in its venv");
        return;
    };
    let dir = scratch_dir("distributed-torchrun");
    let output = Command::new(torchrun)
        .args(["--standalone", "--nproc-per-node=2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["train", "--arch", "happy", "--epochs", "1", "--limit", "32", "--batch-size", "16", "--verbose", "0", "--device", "cpu"])
        .arg("--sync-batch-norm")
        .arg("--data")
        .arg(&train)
        .arg("--root")
        .arg(&*dir)
        .arg("--save")
        .arg(dir.join("model.h5"))
        .env("OMP_NUM_THREADS", "1")
        // torchrun writes its per-job logs under a torchelastic_* folder of the temporary
        // directory: this test's own, removed with it.
        .env("TMPDIR", &*dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.matches("Saved ").count(), 1, "rank 0 alone saves and says so: {stdout}");
    load_model(&dir.join("model.h5"), Device::Cpu).unwrap();
}

/// `train --report` on 2 processes: the validation photos are shared out between them, and
/// rank 0 writes the report one process (`evaluate --report`) writes of the model they trained.
#[test]
fn the_report_after_training_is_shared_out_and_is_one_process_report() {
    let (Some(train), Some(test)) = (shared_data("train_catvnoncat.h5"), shared_data("test_catvnoncat.h5")) else { return };
    let dir = scratch_dir("distributed-report");
    let out = dir.join("ranks");
    let train_command = {
        let (train, test, out) = (train.clone(), test.clone(), out.clone());
        move |_rank: usize| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_keras-tch"));
            command
                .args(["train", "--arch", "happy", "--epochs", "6", "--batch-size", "32", "--verbose", "0"])
                .args(["--device", "cpu", "--sync-batch-norm", "--data"])
                .arg(&train)
                .arg("--validation-data")
                .arg(&test)
                .arg("--report")
                .arg(out.join("report"))
                .arg("--root")
                .arg(&out)
                .arg("--save")
                .arg(out.join("model.h5"));
            command
        }
    };
    let (runs, _) = Job::start(2, &out, 0, train_command).wait();
    for (rank, run) in runs.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
    }
    // One process's report of the model the ranks trained (rank 0 saved it). Not of a model
    // trained again in one process: that one sums its gradients in another order, so its weights
    // differ in the last bits, which can move an image at the decision boundary to the other
    // class (seen on an AMD EPYC: [[15, 2], [17, 16]] against the ranks' [[16, 1], [17, 16]]).
    let single = Command::new(env!("CARGO_BIN_EXE_keras-tch"))
        .args(["evaluate", "--device", "cpu", "--batch-size", "32", "--model"])
        .arg(out.join("model.h5"))
        .arg("--data")
        .arg(&test)
        .arg("--report")
        .arg(dir.join("single").join("report"))
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    let report = |run: &str| -> serde_json::Value { serde_json::from_str(&read(&dir.join(run).join("report/report.json"))).unwrap() };
    let (ranks, single) = (report("ranks"), report("single"));
    println!("one process: {}", single["confusion_matrix"]);
    let predicted_ones = single["confusion_matrix"][0][1].as_u64().unwrap() + single["confusion_matrix"][1][1].as_u64().unwrap();
    assert!((1..50).contains(&predicted_ones), "the model predicts one class only, or this test shows little: {single}");
    assert_eq!(ranks["confusion_matrix"], single["confusion_matrix"]);
    assert_eq!(ranks["classification_report"], single["classification_report"]);
    assert!(runs[0].stdout.contains("precision"), "rank 0 prints the report: {}", runs[0].stdout);
}

/// One rank of the tests above, launched by them (skipped when run on its own).
#[test]
#[ignore = "a rank process: the tests above launch it"]
fn rank_process() {
    let Ok(scenario) = std::env::var(SCENARIO) else { return };
    let env = LaunchEnv::from_env().unwrap().expect("WORLD_SIZE > 1");
    let group = ProcessGroup::join(&env, GROUP_TIMEOUT).unwrap();
    let (rank, world) = (group.rank(), group.world_size());
    match scenario.as_str() {
        "collectives" => {
            // Sums, over tensors of several shapes and two kinds at once.
            let scale = (rank + 1) as f64;
            let filled = Tensor::full([2, 3], scale, (Kind::Float, tch::Device::Cpu));
            let ramp = Tensor::arange(5, (Kind::Float, tch::Device::Cpu)) * scale;
            let count = Tensor::from_slice(&[rank as i64, 10]);
            group.all_reduce_sum(&[&filled, &ramp, &count]).unwrap();
            let total: f64 = (1..=world).map(|r| r as f64).sum();
            assert!(filled.equal(&Tensor::full([2, 3], total, (Kind::Float, tch::Device::Cpu))), "{filled}");
            assert!(ramp.equal(&(Tensor::arange(5, (Kind::Float, tch::Device::Cpu)) * total)), "{ramp}");
            assert_eq!(Vec::<i64>::try_from(&count).unwrap(), [(0..world as i64).sum(), 10 * world as i64]);

            // Rank 1's weights (which require gradients, as a model's do) reach every rank.
            let weights = Tensor::full([4], rank as f64, (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
            group.broadcast(&[&weights], 1).unwrap();
            assert_eq!(Vec::<f32>::try_from(&weights.detach()).unwrap(), [1.0; 4]);

            group.barrier().unwrap();
            println!("rank {rank} of {world}: collectives ok");
        }
        "one_dies" => {
            if rank == 1 {
                std::process::exit(3);
            }
            let gradient = Tensor::ones([8], (Kind::Float, tch::Device::Cpu));
            match group.all_reduce_sum(&[&gradient]) {
                Ok(()) => println!("rank {rank}: the all-reduce succeeded without rank 1"),
                Err(error) => {
                    eprintln!("{error:#}");
                    std::process::exit(1);
                }
            }
        }
        "train" => {
            let (model, losses) = train_small(SGD, Some(DataParallel::new(group)));
            if rank == 0 {
                save_safetensors(&model, Path::new(&std::env::var(WEIGHTS_OUT).unwrap())).unwrap();
            }
            println!("losses {}", losses.iter().map(f64::to_string).collect::<Vec<_>>().join(","));
        }
        "batch_norm" => {
            let model = batch_norm_step(Some(DataParallel::new(group)));
            if rank == 0 {
                save_safetensors(&model, Path::new(&std::env::var(WEIGHTS_OUT).unwrap())).unwrap();
            }
        }
        "sync_batch_norm" => {
            let parallel = DataParallel::new(group);
            let model = train_batch_norm(true, Some(parallel.clone()));
            // The same job with per-replica statistics, for the test to tell them apart.
            let unsynchronized = train_batch_norm(false, Some(parallel));
            if rank == 0 {
                let out = PathBuf::from(std::env::var(WEIGHTS_OUT).unwrap());
                save_safetensors(&model, &out).unwrap();
                save_safetensors(&unsynchronized, &out.with_file_name("rank0-unsynchronized.safetensors")).unwrap();
            }
        }
        other => panic!("unknown scenario {other}"),
    }
}
