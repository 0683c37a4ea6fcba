//! Up to two `scripts/keras_check.py --serve` per test program (one per test thread on this
//! 2-core machine): TensorFlow takes seconds to import, so the program's Keras checks share
//! these Python processes instead of starting one each.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

/// What `keras_check.py` run alone would have exited with and printed.
pub struct CheckOutput {
    pub status: i64,
    pub stdout: String,
    pub stderr: String,
}

struct Server {
    _child: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
}

/// The program's servers, each started on first use; `None` again after it died, to start anew.
static SERVERS: [Mutex<Option<Server>>; 2] = [Mutex::new(None), Mutex::new(None)];

/// `keras_check.py ARGS` answered by one of the program's servers.
pub fn run(python: &Path, args: &[&std::ffi::OsStr]) -> CheckOutput {
    let args: Vec<&str> = args.iter().map(|a| a.to_str().expect("keras_check.py arguments are UTF-8")).collect();
    // A free server, else wait for the first. A test that panicked while holding a lock left
    // its server between requests: reuse it.
    let mut server = SERVERS
        .iter()
        .find_map(|server| match server.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })
        .unwrap_or_else(|| SERVERS[0].lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    let running = server.get_or_insert_with(|| start(python));
    let answer = ask(running, &serde_json::to_string(&args).unwrap());
    if answer.is_none() {
        *server = None;
    }
    let answer = answer.unwrap_or_else(|| panic!("keras_check.py --serve ended without answering {args:?}"));
    let text = |key: &str| answer[key].as_str().unwrap_or_default().to_string();
    CheckOutput { status: answer["status"].as_i64().unwrap_or(-1), stdout: text("stdout"), stderr: text("stderr") }
}

fn start(python: &Path) -> Server {
    let mut child = Command::new(python)
        .arg(super::repo_root().join("scripts/keras_check.py"))
        .arg("--serve")
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // TensorFlow's own chatter; every failure comes back in its answer.
        .stderr(Stdio::null())
        .spawn()
        .expect("starting keras_check.py --serve");
    let requests = child.stdin.take().unwrap();
    let answers = BufReader::new(child.stdout.take().unwrap());
    Server { _child: child, requests, answers }
}

/// The answer to one request line, or `None` if the server is gone.
fn ask(server: &mut Server, request: &str) -> Option<serde_json::Value> {
    writeln!(server.requests, "{request}").ok()?;
    server.requests.flush().ok()?;
    let mut line = String::new();
    if server.answers.read_line(&mut line).ok()? == 0 {
        return None;
    }
    serde_json::from_str(&line).ok()
}
