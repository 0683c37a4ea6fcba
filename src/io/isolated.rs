//! libhdf5 runs on a user's file in a child process, never in keras-tch's own.
//!
//! libhdf5 is written in C and trusts the bytes it parses. A fuzzer finds, within minutes, Keras
//! files that make it loop forever, take SIGSEGV or SIGABRT, or write past a buffer (1.10.8, the
//! library Debian 12 ships and keras-tch links; 2.0 still hangs on some of them). No check in
//! front of it can be complete, so every read of an HDF5 file from a user happens in a child
//! forked for it: the child opens the file, reads what the caller asks for into plain Rust
//! values, sends them through a pipe and exits. If libhdf5 crashes, the child dies; if it loops,
//! the child is killed at a time limit; either way the caller gets an error naming the file, and
//! keras-tch's own memory was never touched by libhdf5 parsing the file.
//!
//! The child is a `fork` without `exec`, so the job can be any closure. It runs only libhdf5 and
//! plain Rust (never libtorch, whose thread pool does not survive a fork), prints nothing, dies
//! with its parent (`PR_SET_PDEATHSIG`) and on Ctrl-C, and leaves through `_exit`. Forked from a
//! multi-threaded process, it must not wait for a lock another thread held at that instant: it
//! holds HDF5's (taken across the fork), glibc's allocator is fork-safe, and it takes no other
//! (no printing, no panic hook). The one left is std's backtrace lock, taken when an error is
//! made with `RUST_BACKTRACE` set: a child that found it held (another thread was capturing a
//! backtrace at the fork) waited for it until the time limit, about once in 50 runs of a test
//! program with `RUST_BACKTRACE=1`. So the program turns that capture off before its threads
//! start: [`turn_off_error_backtraces`].

use std::ffi::c_int;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A value that crosses from the child to its parent: written into bytes by the child, read
/// back by the parent. Both are the same program, so native byte order is used.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(input: &mut &[u8]) -> Result<Self>;
}

/// What the child answers with: the job's value, its error, or a panic.
const ANSWER_VALUE: u8 = 0;
const ANSWER_ERROR: u8 = 1;
const ANSWER_PANIC: u8 = 2;

/// Larger pipe than the default 64 KiB: a ResNet50's 98 MB of weights cross in fewer wake-ups.
pub(super) const PIPE_BYTES: c_int = 1 << 20;

/// What a reading process may take before it is stopped.
#[derive(Debug, Clone, Copy)]
pub struct ChildLimits {
    pub time: Duration,
    /// Address space beyond what the process had when it was forked (`RLIMIT_AS`): a corrupt
    /// file cannot make libhdf5 take the machine's memory.
    pub memory_bytes: u64,
}

/// Make errors without capturing a backtrace (`RUST_LIB_BACKTRACE=0`), unless the user set
/// `RUST_LIB_BACKTRACE` themselves; panics still print theirs under `RUST_BACKTRACE=1`. A
/// reading process forked while another thread held std's backtrace lock would otherwise wait
/// for it forever when it made an error. Call it first thing in `main`, before any thread starts.
pub fn turn_off_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Run `job` in a child process and return what it returned. `what` says what is being read
/// (`reading model.h5`), for the errors of a child that crashed, hung or was stopped.
pub fn isolated<T: Wire>(what: &str, limits: ChildLimits, job: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("{what}: cannot create a pipe for the reading process: {}", std::io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    let parent = std::process::id() as libc::pid_t;
    // HDF5's lock (hdf5-metno's, taken around every libhdf5 call) is held across the fork, so
    // no other thread of this process is inside libhdf5, its state half-changed, when the child
    // is made. The child never releases it: releasing could hand it to a thread of the parent
    // that was waiting for it and does not exist in the child, and the child's next call would
    // wait forever. Its own calls take it again, which a reentrant lock allows.
    let hdf5_lock = hdf5_sys::LOCK.lock();
    // SAFETY: fork has no preconditions; the child only runs `child_main`, which never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::mem::forget(hdf5_lock);
        child_main(write_end, parent, limits.memory_bytes, job);
    }
    drop(hdf5_lock);
    // SAFETY: the parent's copy of the write end is not used (its EOF tells the child is done).
    unsafe { libc::close(write_end) };
    // SAFETY: `read_end` is an open descriptor owned by nothing else from here on.
    let mut reader = unsafe { std::fs::File::from_raw_fd(read_end) };
    if pid < 0 {
        bail!("{what}: cannot start the reading process: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a pipe descriptor; a refused size only means a slower transfer.
    unsafe { libc::fcntl(read_end, libc::F_SETPIPE_SZ, PIPE_BYTES) };
    let received = read_until_eof(&mut reader, Instant::now() + limits.time);
    if received.is_err() {
        // SAFETY: `pid` is our child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = wait_for(pid);
    let answer = match received {
        Ok(answer) => answer,
        Err(ReadFailure::TimedOut) => return Err(timed_out(what, &limits)),
        Err(ReadFailure::Io(e)) => bail!("{what}: lost the reading process's answer: {e}"),
    };
    explain_exit(what, status, &limits)?;
    decode_answer(what, &answer)
}

/// The error of a reading process stopped at its time limit.
pub(super) fn timed_out(what: &str, limits: &ChildLimits) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: libhdf5 did not finish in {} s (a corrupt HDF5 file can make it loop forever), so it was stopped; \
         the file is corrupt, or raise KERAS_TCH_HDF5_SECONDS if it is just very large",
        limits.time.as_secs()
    )
}

/// Nothing for a reading process that exited normally; else what ended it, as an error.
pub(super) fn explain_exit(what: &str, status: std::io::Result<Exit>, limits: &ChildLimits) -> Result<()> {
    match status {
        Ok(Exit::Code(0)) => Ok(()),
        Ok(Exit::Code(code)) => bail!("{what}: the reading process exited with status {code}"),
        Ok(Exit::Signal(signal)) if signal == libc::SIGINT || signal == libc::SIGTERM => {
            bail!("{what}: interrupted ({})", signal_name(signal))
        }
        Ok(Exit::Signal(signal)) => bail!(
            "{what}: libhdf5 crashed ({}) parsing the file, which is corrupt (or reading it needed more than the {} MiB \
             allowed); keras-tch reads HDF5 in a separate process, so this is an error and nothing else was affected",
            signal_name(signal),
            limits.memory_bytes >> 20
        ),
        Err(e) => bail!("{what}: cannot wait for the reading process: {e}"),
    }
}

fn child_main<T: Wire>(write_end: c_int, parent: libc::pid_t, memory_bytes: u64, job: impl FnOnce() -> Result<T>) -> ! {
    // SAFETY: this is a freshly forked child, and `write_end` is its pipe to the parent.
    unsafe { prepare_child(&[write_end], parent, memory_bytes) };
    // (No `panic::set_hook` here: it takes a lock another thread of the parent may have held at
    // the fork, and would wait forever. A panic's message goes to the child's stderr, /dev/null.)
    let answer = encode_answer(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
    write_all_or_exit(write_end, &answer);
    // SAFETY: `_exit` skips atexit handlers and destructors that belong to the parent.
    unsafe { libc::_exit(0) }
}

/// Make a freshly forked child a reading process: only the descriptors in `keep` (above
/// stderr) stay open, its output goes to /dev/null, it takes no file locks, dies with its parent
/// and on Ctrl-C, and may take `memory_bytes` of address space beyond what it has.
///
/// # Safety
/// Only for a freshly forked child, which owns no Rust objects wrapping the descriptors it closes.
pub(super) unsafe fn prepare_child(keep: &[c_int], parent: libc::pid_t, memory_bytes: u64) {
    // Descriptors inherited from the parent's other threads are not the child's to keep: an
    // HDF5 file another thread has open for writing holds a lock that would outlive it here.
    close_all_but(keep);
    // What libhdf5 or glibc print as they crash ("free(): invalid pointer") is not the
    // user's to read: the parent's error says what happened.
    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    if null >= 0 {
        libc::dup2(null, 1);
        libc::dup2(null, 2);
        libc::close(null);
    }
    // The child only reads; a lock it took would get in the way of the parent's writers.
    libc::setenv(c"HDF5_USE_FILE_LOCKING".as_ptr(), c"FALSE".as_ptr(), 1);
    libc::signal(libc::SIGINT, libc::SIG_DFL);
    libc::signal(libc::SIGTERM, libc::SIG_DFL);
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::getppid() != parent {
        libc::_exit(1); // the parent is already gone
    }
    if let Some(now) = address_space_bytes() {
        let cap = now.saturating_add(memory_bytes);
        libc::setrlimit(libc::RLIMIT_AS, &libc::rlimit { rlim_cur: cap, rlim_max: cap });
    }
}

/// A job's outcome as the bytes the parent decodes ([`decode_answer`]): its value, its error,
/// or its panic's message.
pub(super) fn encode_answer<T: Wire>(outcome: std::thread::Result<Result<T>>) -> Vec<u8> {
    let mut answer = Vec::new();
    match outcome {
        Ok(Ok(value)) => {
            answer.push(ANSWER_VALUE);
            value.put(&mut answer);
        }
        Ok(Err(error)) => {
            answer.push(ANSWER_ERROR);
            format!("{error:#}").put(&mut answer);
        }
        Err(panic) => {
            answer.push(ANSWER_PANIC);
            let text = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            text.unwrap_or_else(|| "a panic without a message".into()).put(&mut answer);
        }
    }
    answer
}

/// Write all of `bytes` to `fd` from a reading process, or leave it (the parent is gone).
pub(super) fn write_all_or_exit(fd: c_int, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a live buffer of `rest.len()` bytes.
        let written = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if written <= 0 {
            if written < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(3) };
        }
        rest = &rest[written as usize..];
    }
}

/// Close every descriptor above stderr except those in `keep`.
///
/// # Safety
/// Only for a freshly forked child, which owns no Rust objects wrapping those descriptors.
unsafe fn close_all_but(keep: &[c_int]) {
    let mut keep: Vec<libc::c_uint> = keep.iter().map(|&fd| fd as libc::c_uint).collect();
    keep.sort_unstable();
    let mut first = 3;
    for fd in keep {
        if fd > first {
            libc::close_range(first, fd - 1, 0);
        }
        first = first.max(fd + 1);
    }
    libc::close_range(first, libc::c_uint::MAX, 0);
}

/// This process's address space (`/proc/self/statm`'s first field, in pages).
fn address_space_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.checked_mul(u64::try_from(page).ok()?)
}

/// Why reading a reading process's answer failed.
pub(super) enum ReadFailure {
    TimedOut,
    Io(std::io::Error),
}

/// Wait until `reader` has bytes (or its writer closed it), or `deadline` passes.
pub(super) fn wait_readable(reader: &std::fs::File, deadline: Instant) -> Result<(), ReadFailure> {
    use std::os::fd::AsRawFd;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadFailure::TimedOut);
        }
        let mut poll = libc::pollfd { fd: reader.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let millis = left.as_millis().clamp(1, c_int::MAX as u128) as c_int;
        // SAFETY: one live pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready > 0 {
            return Ok(());
        }
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(ReadFailure::Io(error));
            }
        }
    }
}

/// Everything the child writes, until it closes the pipe (by exiting), or `deadline`.
fn read_until_eof(reader: &mut std::fs::File, deadline: Instant) -> Result<Vec<u8>, ReadFailure> {
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; PIPE_BYTES as usize];
    loop {
        wait_readable(reader, deadline)?;
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(answer),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
}

pub(super) enum Exit {
    Code(i32),
    Signal(i32),
}

pub(super) fn wait_for(pid: libc::pid_t) -> std::io::Result<Exit> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            });
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

pub(super) fn decode_answer<T: Wire>(what: &str, answer: &[u8]) -> Result<T> {
    let Some((&tag, mut rest)) = answer.split_first() else {
        bail!("{what}: the reading process ended without an answer");
    };
    match tag {
        ANSWER_VALUE => {
            let value = T::take(&mut rest).with_context(|| format!("{what}: the reading process's answer is garbled"))?;
            if !rest.is_empty() {
                bail!("{what}: the reading process's answer has {} bytes too many", rest.len());
            }
            Ok(value)
        }
        ANSWER_ERROR => bail!("{}", String::take(&mut rest)?),
        ANSWER_PANIC => bail!("{what}: keras-tch panicked while reading (a bug; please report it): {}", String::take(&mut rest)?),
        other => bail!("{what}: the reading process answered with an unknown tag {other}"),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// What libhdf5 may take over a file of `file_bytes`, far more than a real read needs: 30 s plus
/// 1 s per 20 MB (`KERAS_TCH_HDF5_SECONDS` sets it instead), and 2 GiB of memory plus four
/// times the file (its values, and their copy on the way to the parent).
pub fn hdf5_limits(file_bytes: u64) -> ChildLimits {
    let seconds = std::env::var("KERAS_TCH_HDF5_SECONDS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0);
    ChildLimits {
        time: seconds.map_or(Duration::from_secs(30 + file_bytes / 20_000_000), Duration::from_secs_f64),
        memory_bytes: (2u64 << 30).saturating_add(file_bytes.saturating_mul(4)),
    }
}

// --- Wire encodings of the plain values readers send.

fn take_slice<'a>(input: &mut &'a [u8], count: usize) -> Result<&'a [u8]> {
    if input.len() < count {
        bail!("{count} bytes expected, {} left", input.len());
    }
    let (head, tail) = input.split_at(count);
    *input = tail;
    Ok(head)
}

impl Wire for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(u64::from_ne_bytes(take_slice(input, 8)?.try_into()?))
    }
}

impl Wire for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_ne_bytes());
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(i64::from_ne_bytes(take_slice(input, 8)?.try_into()?))
    }
}

impl Wire for usize {
    fn put(&self, out: &mut Vec<u8>) {
        (*self as u64).put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(usize::try_from(u64::take(input)?)?)
    }
}

impl Wire for u8 {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(take_slice(input, 1)?[0])
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        let len = usize::take(input)?;
        Ok(String::from_utf8(take_slice(input, len)?.to_vec())?)
    }
}

impl Wire for PathBuf {
    fn put(&self, out: &mut Vec<u8>) {
        use std::os::unix::ffi::OsStrExt;
        let bytes = self.as_os_str().as_bytes();
        bytes.len().put(out);
        out.extend_from_slice(bytes);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let len = usize::take(input)?;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(take_slice(input, len)?)))
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.put(out);
            }
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(if u8::take(input)? == 0 { None } else { Some(T::take(input)?) })
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        self.iter().for_each(|item| item.put(out));
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        let len = usize::take(input)?;
        // Each item takes at least one byte: a garbled length cannot reserve more than is there.
        let mut items = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            items.push(T::take(input)?);
        }
        Ok(items)
    }
}

/// A result whose error crosses as its message.
impl<T: Wire> Wire for std::result::Result<T, String> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Ok(value) => {
                out.push(0);
                value.put(out);
            }
            Err(message) => {
                out.push(1);
                message.put(out);
            }
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok(if u8::take(input)? == 0 { Ok(T::take(input)?) } else { Err(String::take(input)?) })
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        Ok((A::take(input)?, B::take(input)?))
    }
}

/// Bulk data (weights, pixels) crosses as raw bytes in one copy rather than item by item.
pub struct Bulk<T>(pub Vec<T>);

/// Element types with no padding and no invalid bit patterns, so their bytes can be copied.
pub trait PlainElement: Copy + Default {}
impl PlainElement for f32 {}
impl PlainElement for u8 {}
impl PlainElement for i64 {}

impl<T: PlainElement> Wire for Bulk<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.len().put(out);
        // SAFETY: `T` is plain data (no padding), so its memory is `len * size_of::<T>()`
        // initialised bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), std::mem::size_of_val(self.0.as_slice())) };
        out.extend_from_slice(bytes);
    }
    fn take(input: &mut &[u8]) -> Result<Self> {
        let len = usize::take(input)?;
        let size = len.checked_mul(std::mem::size_of::<T>()).context("bulk length overflows")?;
        let bytes = take_slice(input, size)?;
        let mut values = vec![T::default(); len];
        // SAFETY: `values` owns exactly `size` bytes, and any bit pattern is a valid `T`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), values.as_mut_ptr().cast::<u8>(), size) };
        Ok(Bulk(values))
    }
}

/// Memory shared with the reading process (an anonymous `MAP_SHARED` mapping made before the
/// fork): the child writes bulk values straight into it, so they never cross the pipe, and the
/// parent reads them once the child has exited.
pub struct SharedBuffer<T: PlainElement> {
    pointer: *mut T,
    len: usize,
}

impl<T: PlainElement> SharedBuffer<T> {
    /// `len` zeroed elements.
    pub fn new(len: usize) -> Result<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).context("shared buffer size overflows")?;
        if bytes == 0 {
            return Ok(Self { pointer: std::ptr::NonNull::dangling().as_ptr(), len: 0 });
        }
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let pointer = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0)
        };
        if pointer == libc::MAP_FAILED {
            bail!("cannot map {bytes} bytes of shared memory: {}", std::io::Error::last_os_error());
        }
        Ok(Self { pointer: pointer.cast(), len })
    }

    /// The elements, for the reading process to fill.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: `len` elements of zero-initialised memory, owned by `self` and any bit
        // pattern is a valid `T`.
        unsafe { std::slice::from_raw_parts_mut(self.pointer, self.len) }
    }

    /// The elements; in the parent, only after the child that filled them has exited (the
    /// wait for it orders its writes before these reads).
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: as for `as_mut_slice`.
        unsafe { std::slice::from_raw_parts(self.pointer, self.len) }
    }
}

impl<T: PlainElement> Drop for SharedBuffer<T> {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, unmapped once.
            unsafe { libc::munmap(self.pointer.cast(), self.len * std::mem::size_of::<T>()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChildLimits = ChildLimits { time: Duration::from_secs(30), memory_bytes: 1 << 30 };

    #[test]
    fn values_cross_from_the_child() {
        let answer = isolated("a test", LIMITS, || Ok((vec!["a".to_string(), "é".into()], Bulk(vec![1.5f32, -2.0])))).unwrap();
        assert_eq!(answer.0, ["a", "é"]);
        assert_eq!(answer.1 .0, [1.5, -2.0]);
    }

    #[test]
    fn the_child_fills_shared_memory() {
        let mut buffer = SharedBuffer::<f32>::new(1000).unwrap();
        let slice = buffer.as_mut_slice();
        isolated("a test", LIMITS, || {
            slice.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
            Ok(0u64)
        })
        .unwrap();
        assert_eq!(buffer.as_slice()[999], 999.0);
    }

    #[test]
    fn the_childs_error_is_the_callers_error() {
        let error = isolated::<u64>("a test", LIMITS, || bail!("no such dataset 'x'")).unwrap_err();
        assert_eq!(error.to_string(), "no such dataset 'x'");
    }

    #[test]
    fn a_crash_in_the_child_is_an_error() {
        let error = isolated::<u64>("reading f.h5", LIMITS, || {
            // SAFETY: not safe at all, deliberately: a write through a null pointer ends this child
            // with SIGSEGV, as libhdf5's bugs do.
            unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            Ok(0)
        })
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("reading f.h5: libhdf5 crashed (SIGSEGV)"), "{error}");
    }

    #[test]
    fn a_child_that_never_finishes_is_stopped_at_the_limit() {
        let started = Instant::now();
        let error = isolated::<u64>("reading f.h5", ChildLimits { time: Duration::from_millis(300), ..LIMITS }, || loop {
            std::thread::sleep(Duration::from_millis(50));
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_child_cannot_take_more_memory_than_allowed() {
        let error = isolated::<u64>("reading f.h5", LIMITS, || {
            let huge: Vec<u8> = Vec::with_capacity(4 << 30);
            Ok(huge.capacity() as u64)
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("SIGABRT") && error.contains("1024 MiB"), "{error}");
    }

    #[test]
    fn a_panic_in_the_child_is_reported_as_a_bug() {
        let error = isolated::<u64>("reading f.h5", LIMITS, || panic!("index out of bounds")).unwrap_err().to_string();
        assert!(error.contains("panicked") && error.contains("index out of bounds"), "{error}");
    }
}
