//! The execution loop: make an input, write it to `current-input.<ext>` *before* running it
//! (an abort or SIGSEGV that kills the process leaves its reproducer on disk), run the target
//! under `catch_unwind`, and keep every panic with a distinct origin as `crash-<n>.<ext>` with
//! its message in `crash-<n>.txt`. Inputs slower than the slow limit are kept as
//! `slow-<n>.<ext>`; a watchdog thread ends the process when one runs past the hang limit
//! (nothing can interrupt it in-process), after saving it as `hang-<n>.<ext>`.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use super::dice::Dice;
use super::targets::{output_folder, Spec};

/// How long a run may take before it is reported, and before the process is ended.
pub struct Limits {
    pub slow: Duration,
    pub hang: Duration,
}

/// One target's results.
pub struct Summary {
    pub target: &'static str,
    pub execs: u64,
    pub wall: Duration,
    pub cpu_seconds: f64,
    pub crashes: Vec<Crash>,
    pub slow_inputs: Vec<PathBuf>,
    pub corpus_files: usize,
}

/// A distinct panic: where it comes from, what it said, its first reproducer, how often.
pub struct Crash {
    pub message: String,
    pub reproducer: PathBuf,
    pub hits: u64,
}

impl Summary {
    /// `fuzz <target>: <execs> execs in <s> s (<cpu> CPU s), <k> crashes, <h> slow inputs, corpus <n> files`
    pub fn line(&self) -> String {
        format!(
            "fuzz {}: {} execs in {:.1} s ({:.1} CPU s), {} crashes, {} slow inputs, corpus {} files",
            self.target,
            self.execs,
            self.wall.as_secs_f64(),
            self.cpu_seconds,
            self.crashes.len(),
            self.slow_inputs.len(),
            self.corpus_files
        )
    }
}

/// Fuzz `spec` for `budget` from `seed`; `None` when its seed files are missing.
pub fn fuzz(spec: &'static Spec, seed: u64, budget: Duration, limits: &Limits) -> Option<Summary> {
    install_panic_recorder();
    let folder = output_folder(spec);
    std::fs::create_dir_all(&folder).unwrap_or_else(|e| panic!("creating {}: {e}", folder.display()));
    let mut inputs = (spec.inputs)(&super::corpus::scratch(spec.name))?;
    let current = folder.join(format!("current-input.{}", spec.extension));
    raw_stderr(&format!("fuzz {}: running; the input under test is always {}\n", spec.name, current.display()));

    let mut findings = Findings::new(spec, folder);
    let mut errors = ErrorCounts::default();
    let (started, cpu_started) = (Instant::now(), cpu_seconds());
    let mut execs = 0;
    while started.elapsed() < budget {
        let input = (inputs.make)(&mut Dice::for_exec(seed, spec.name, execs));
        std::fs::write(&current, &input).unwrap_or_else(|e| panic!("writing {}: {e}", current.display()));
        let context = format!("target {}, seed {seed}, execution {execs}\n", spec.name);
        let outcome = run_watched(spec, &current, &context, limits.hang);
        if outcome.took > limits.slow {
            findings.slow(&current, outcome.took, &context);
        }
        match outcome.panic {
            Some(panic) => findings.crash(&current, panic, &context),
            None => errors.add(outcome.error.as_ref()),
        }
        execs += 1;
    }
    let top_errors = super::env_f64("FUZZ_ERRORS", 0.0) as usize;
    if top_errors > 0 {
        raw_stderr(&format!("fuzz {}: the most frequent errors of {execs} executions:\n{}", spec.name, errors.top(top_errors)));
    }
    Some(Summary {
        target: spec.name,
        execs,
        wall: started.elapsed(),
        cpu_seconds: cpu_seconds() - cpu_started,
        crashes: findings.crashes,
        slow_inputs: findings.slow_inputs,
        corpus_files: inputs.corpus_files,
    })
}

struct Outcome {
    took: Duration,
    /// The library's error, when it refused the input.
    error: Option<anyhow::Error>,
    panic: Option<Panic>,
}

/// Run the target once, under the watchdog.
fn run_watched(spec: &Spec, input: &Path, context: &str, hang: Duration) -> Outcome {
    watchdog::arm(input, spec.extension, context, hang);
    let began = Instant::now();
    let result = run_caught(spec.run, input);
    let took = began.elapsed();
    watchdog::disarm();
    match result {
        Ok(result) => Outcome { took, error: result.err(), panic: None },
        Err(panic) => Outcome { took, error: None, panic: Some(panic) },
    }
}

/// Whether an error's text is UTF-8. A `String` that is not was made from unchecked bytes
/// (`from_utf8_unchecked` on file data): undefined behaviour, which the debug build's checks
/// turn into an abort at the first `chars()`.
fn is_utf8(error: &anyhow::Error) -> bool {
    std::str::from_utf8(format!("{error:#}").as_bytes()).is_ok()
}

/// How the library refused inputs, most frequent first: where the mutations stop, for tuning
/// the generators (printed with FUZZ_ERRORS=N).
#[derive(Default)]
struct ErrorCounts(HashMap<String, u64>);

impl ErrorCounts {
    /// Count a refusal (`None`: the input was accepted).
    fn add(&mut self, error: Option<&anyhow::Error>) {
        // The innermost cause, without numbers, identifies the check.
        let key = match error {
            Some(error) => {
                error.root_cause().to_string().lines().next().unwrap_or("").chars().filter(|c| !c.is_ascii_digit()).take(110).collect()
            }
            None => "(accepted)".to_string(),
        };
        *self.0.entry(key).or_default() += 1;
    }

    fn top(&self, n: usize) -> String {
        let mut counts: Vec<_> = self.0.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        counts.iter().take(n).map(|(error, count)| format!("  {count:>7} × {error}\n")).collect()
    }
}

/// What one target's runs turned up, with the reproducers kept in its folder.
struct Findings {
    spec: &'static Spec,
    folder: PathBuf,
    /// Index into `crashes` of each panic origin seen in this run.
    by_origin: HashMap<String, usize>,
    /// The reproducer kept by an earlier run for each origin (from its `crash-<n>.txt`).
    kept_before: HashMap<String, PathBuf>,
    crashes: Vec<Crash>,
    slow_inputs: Vec<PathBuf>,
}

const ORIGIN_LINE: &str = "origin: ";

impl Findings {
    fn new(spec: &'static Spec, folder: PathBuf) -> Self {
        let kept_before = std::fs::read_dir(&folder)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("crash-") && n.ends_with(".txt")))
            .filter_map(|note| {
                let text = std::fs::read_to_string(&note).ok()?;
                let origin = text.lines().find_map(|l| l.strip_prefix(ORIGIN_LINE))?.to_string();
                Some((origin, note.with_extension(spec.extension)))
            })
            .collect();
        Self { spec, folder, by_origin: HashMap::new(), kept_before, crashes: Vec::new(), slow_inputs: Vec::new() }
    }

    /// Count a panic under its origin; the first input of an origin is kept, with the message
    /// and backtrace, unless an earlier run kept one already.
    fn crash(&mut self, input: &Path, panic: Panic, context: &str) {
        if let Some(&i) = self.by_origin.get(&panic.origin) {
            self.crashes[i].hits += 1;
            return;
        }
        let reproducer = match self.kept_before.get(&panic.origin) {
            Some(kept) => kept.clone(),
            None => {
                let backtrace = panic.backtrace.map(|b| b.to_string()).unwrap_or_default();
                let note = format!("{context}{ORIGIN_LINE}{}\npanic: {}\n\nbacktrace:\n{backtrace}", panic.origin, panic.message);
                keep(input, &self.folder, "crash", self.spec.extension, &note)
            }
        };
        let message: String = panic.message.chars().take(400).collect();
        raw_stderr(&format!("fuzz {}: CRASH (panic): {message}\n  reproducer: {}\n", self.spec.name, reproducer.display()));
        self.by_origin.insert(panic.origin, self.crashes.len());
        self.crashes.push(Crash { message: panic.message, reproducer, hits: 1 });
    }

    fn slow(&mut self, input: &Path, took: Duration, context: &str) {
        let kept = keep(input, &self.folder, "slow", self.spec.extension, &format!("{context}took {:.1} s\n", took.as_secs_f64()));
        raw_stderr(&format!("fuzz {}: SLOW: {:.1} s on {}\n", self.spec.name, took.as_secs_f64(), kept.display()));
        self.slow_inputs.push(kept);
    }
}

/// A panic as the recorder saw it.
pub struct Panic {
    /// `file:line:col` (with the calling keras-tch function when the panic is in a dependency)
    /// and the message's first line without digits: the same bug reached with other sizes or
    /// indices counts once.
    pub origin: String,
    pub message: String,
    pub backtrace: Option<Backtrace>,
}

impl Panic {
    /// An error whose text is not UTF-8, reported as a crash (see [`is_utf8`]).
    fn non_utf8(error: &anyhow::Error) -> Self {
        let text = String::from_utf8_lossy(format!("{error:#}").as_bytes()).into_owned();
        Panic {
            origin: "an error message that is not UTF-8".into(),
            message: format!("the library's error message is not UTF-8 (a str made from unchecked bytes, undefined behaviour): {text}"),
            backtrace: None,
        }
    }
}

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

/// A panic hook that, while a target runs on this thread, records the panic (with a
/// backtrace, which is gone once unwinding ends) instead of printing it; elsewhere the usual
/// hook runs.
fn install_panic_recorder() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let usual = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !RECORDING.get() {
                return usual(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".into());
            let location = info.location().map_or("unknown location".into(), |l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let backtrace = Backtrace::force_capture();
            let first_line: String = message.lines().next().unwrap_or("").chars().filter(|c| !c.is_ascii_digit()).take(160).collect();
            // A panic inside a dependency (tch, std's allocator) is told apart by the project
            // function that called it.
            let caller = if location.starts_with("src/") { String::new() } else { format!(" in {}", project_frame(&backtrace)) };
            let panic = Panic {
                origin: format!("{location}{caller}: {first_line}"),
                message: format!("{message}\n  at {location}{caller}"),
                backtrace: Some(backtrace),
            };
            LAST_PANIC.set(Some(panic));
        }));
    });
}

/// The innermost keras-tch function of a backtrace (release builds keep function names).
fn project_frame(backtrace: &Backtrace) -> String {
    let text = backtrace.to_string();
    let frame = text.lines().map(str::trim).find_map(|line| line.split_once(": ").map(|(_, f)| f).filter(|f| f.starts_with("keras_tch::")));
    // Drop the symbol hash (`::h0123…`).
    frame.map_or("an unknown caller".into(), |f| f.rsplit_once("::h").map_or(f, |(name, _)| name).to_string())
}

/// Run a target, turning a panic, or an error whose text is not UTF-8, into `Err`.
pub fn run_caught(run: fn(&Path) -> anyhow::Result<()>, input: &Path) -> Result<anyhow::Result<()>, Panic> {
    install_panic_recorder();
    RECORDING.set(true);
    let result = catch_unwind(AssertUnwindSafe(|| run(input)));
    RECORDING.set(false);
    match result {
        Ok(Err(error)) if !is_utf8(&error) => Err(Panic::non_utf8(&error)),
        Ok(result) => Ok(result),
        Err(_) => Err(LAST_PANIC.take().unwrap_or_else(|| Panic {
            origin: "unrecorded".into(),
            message: "a panic the hook did not see".into(),
            backtrace: None,
        })),
    }
}

/// Copy `input` to `<folder>/<kind>-<n>.<ext>` (the first free n) with `note` beside it in
/// `<kind>-<n>.txt`.
pub fn keep(input: &Path, folder: &Path, kind: &str, extension: &str, note: &str) -> PathBuf {
    let n = (1..).find(|n| !folder.join(format!("{kind}-{n}.{extension}")).exists()).expect("a free number");
    let kept = folder.join(format!("{kind}-{n}.{extension}"));
    std::fs::copy(input, &kept).unwrap_or_else(|e| panic!("keeping {}: {e}", kept.display()));
    let _ = std::fs::write(folder.join(format!("{kind}-{n}.txt")), note);
    kept
}

/// User + system CPU time of this process and of its children that have ended (the library's
/// HDF5 reading processes do much of the work), in seconds.
pub fn cpu_seconds() -> f64 {
    let of = |who: libc::c_int| {
        // SAFETY: getrusage only writes the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut usage);
            usage
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// Write to the process's stderr directly, past the test harness's output capture: when a
/// crash kills the process, captured output is lost, and this is the line that says where
/// the reproducer is.
pub fn raw_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Ends the process when one run exceeds the hang limit, after keeping its input.
mod watchdog {
    use super::*;

    struct Armed {
        input: PathBuf,
        extension: &'static str,
        context: String,
        since: Instant,
        limit: Duration,
    }

    static ARMED: Mutex<Option<Armed>> = Mutex::new(None);

    pub fn arm(input: &Path, extension: &'static str, context: &str, limit: Duration) {
        static START: Once = Once::new();
        START.call_once(|| {
            std::thread::spawn(watch);
        });
        *ARMED.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Armed { input: input.to_path_buf(), extension, context: context.to_string(), since: Instant::now(), limit });
    }

    pub fn disarm() {
        *ARMED.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn watch() {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
            let Some(run) = armed.as_ref().filter(|run| run.since.elapsed() > run.limit) else { continue };
            let folder = run.input.parent().expect("the input's folder");
            let kept = keep(
                &run.input,
                folder,
                "hang",
                run.extension,
                &format!("{}still running after {:.0} s\n", run.context, run.limit.as_secs_f64()),
            );
            raw_stderr(&format!(
                "fuzz: HANG: one run took over {:.0} s; its input is kept as {}\n",
                run.limit.as_secs_f64(),
                kept.display()
            ));
            // SAFETY: ends the process at once; the stuck thread holds locks that exit handlers
            // (HDF5's among them) could wait on forever.
            unsafe { libc::_exit(HANG_EXIT_CODE) };
        }
    }
}

/// The exit status of a process the watchdog ended (scripts/fuzz.sh reports it as a hang).
pub const HANG_EXIT_CODE: i32 = 70;
