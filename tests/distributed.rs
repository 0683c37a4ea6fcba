//! Data-parallel communication on c10d's Gloo process group, with real processes over
//! loopback: the test hosts the rendezvous store as torchrun's agent does and launches the
//! ranks — this test program again, running `rank_process` — with the variables torchrun sets.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tch::{Kind, Tensor};

use common::scratch_dir;
use keras_tch::train::distributed::{LaunchEnv, ProcessGroup, StoreServer};

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

/// Hosts a store, launches `world_size` ranks playing `scenario`, and waits for them all.
fn launch(scenario: &str, world_size: usize) -> (Vec<RankRun>, Duration) {
    let dir = scratch_dir(&format!("distributed-{scenario}"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _store = StoreServer::serve(listener, GROUP_TIMEOUT).unwrap();
    let started = Instant::now();
    let mut ranks = Vec::new();
    for rank in 0..world_size {
        let (stdout, stderr) = (dir.join(format!("rank{rank}.out")), dir.join(format!("rank{rank}.err")));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["rank_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(SCENARIO, scenario)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", world_size.to_string())
            .env("LOCAL_WORLD_SIZE", world_size.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("TORCHELASTIC_USE_AGENT_STORE", "True")
            .env("TORCHELASTIC_RESTART_COUNT", "0")
            .env("OMP_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        ranks.push((child, stdout, stderr));
    }
    let mut runs = Vec::new();
    for (mut child, stdout, stderr) in ranks {
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("{scenario}: a rank still runs after {DEADLINE:?}: {}", read(&stderr));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        runs.push(RankRun { status, stdout: read(&stdout), stderr: read(&stderr) });
    }
    (runs, started.elapsed())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn collectives_give_correct_values_across_two_processes() {
    let (runs, _) = launch("collectives", 2);
    for (rank, run) in runs.iter().enumerate() {
        assert!(run.status.success(), "rank {rank}: {}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&format!("rank {rank} of 2: collectives ok")), "rank {rank}: {}", run.stdout);
    }
}

#[test]
fn a_rank_that_dies_makes_the_other_fail_with_a_clear_error() {
    let (runs, elapsed) = launch("one_dies", 2);
    println!("rank 0, {elapsed:?} after launch: {}", runs[0].stderr.trim());
    assert_eq!(runs[1].status.code(), Some(3), "rank 1 exits as told: {}", runs[1].stderr);
    assert!(!runs[0].status.success(), "rank 0 cannot succeed without rank 1: {}", runs[0].stdout);
    assert!(runs[0].stderr.contains("rank 0 of 2: all-reduce failed"), "rank 0's error: {}", runs[0].stderr);
    assert!(elapsed < DEADLINE, "took {elapsed:?}");
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
        other => panic!("unknown scenario {other}"),
    }
}
