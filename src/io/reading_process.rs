//! A reading process kept for many reads of one file — a dataset read batch by batch — so each
//! batch costs a request through a pipe instead of a fork (which copies the page tables of a
//! process holding a model: ~50 ms a batch with 800 MB resident, measured).
//!
//! Same isolation as [`super::isolated`]: libhdf5 runs only in the child (prepared the same way:
//! its own descriptors only, output to /dev/null, memory capped — but it ignores Ctrl-C, which
//! the parent handles, and it ends when its parent's end of the request pipe closes, since it
//! outlives the thread that forked it), each answer has the same time limit, and a child
//! that crashed, hung or vanished is an error naming the file — after which this process answers
//! nothing more. Requests and answers are framed by their length; answers are encoded as
//! `isolated`'s are.

use std::ffi::c_int;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::isolated::{
    decode_answer, encode_answer, explain_exit, prepare_child, timed_out, wait_for, wait_readable, write_all_or_exit, ChildLimits,
    ReadFailure, Wire, PIPE_BYTES,
};

/// A child process answering requests `Q` with `A`, one at a time.
pub struct ReadingProcess<Q: Wire, A: Wire> {
    what: String,
    limits: ChildLimits,
    /// `None` once a request failed in a way that leaves the child unusable.
    child: Option<Child>,
    _messages: PhantomData<fn(Q) -> A>,
}

struct Child {
    pid: libc::pid_t,
    requests: std::fs::File,
    answers: std::fs::File,
}

impl<Q: Wire, A: Wire> ReadingProcess<Q, A> {
    /// Fork the child, which answers each request with `serve(request)`; `what` names the file
    /// in errors (`reading data.h5`).
    pub fn start(what: &str, limits: ChildLimits, serve: impl FnMut(Q) -> Result<A>) -> Result<Self> {
        let (request_read, request_write) = pipe(what)?;
        let (answer_read, answer_write) = pipe(what)?;
        let parent = std::process::id() as libc::pid_t;
        // As in `isolated`: no other thread is inside libhdf5 at the fork.
        let hdf5_lock = hdf5_sys::LOCK.lock();
        // SAFETY: fork has no preconditions; the child only runs `serve_requests`, which never returns.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            std::mem::forget(hdf5_lock);
            serve_requests(request_read, answer_write, parent, limits, serve);
        }
        drop(hdf5_lock);
        // SAFETY: the child's ends, not used by the parent (their closing is how each side sees the other leave).
        unsafe {
            libc::close(request_read);
            libc::close(answer_write);
        }
        // SAFETY: open descriptors owned by nothing else from here on.
        let (requests, answers) = unsafe { (std::fs::File::from_raw_fd(request_write), std::fs::File::from_raw_fd(answer_read)) };
        if pid < 0 {
            bail!("{what}: cannot start the reading process: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a pipe descriptor; a refused size only means a slower transfer.
        unsafe { libc::fcntl(answers.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES) };
        Ok(Self { what: what.to_string(), limits, child: Some(Child { pid, requests, answers }), _messages: PhantomData })
    }

    /// The child's answer to `request`, or why there is none.
    pub fn ask(&mut self, request: &Q) -> Result<A> {
        let what = self.what.clone();
        let child = self.child.as_mut().with_context(|| format!("{what}: an earlier read of this file failed"))?;
        let mut frame = Vec::new();
        let mut body = Vec::new();
        request.put(&mut body);
        (body.len() as u64).put(&mut frame);
        frame.extend_from_slice(&body);
        let deadline = Instant::now() + self.limits.time;
        let exchanged = child
            .requests
            .write_all(&frame)
            .map_err(ReadFailure::Io)
            .and_then(|()| read_exact_by(&mut child.answers, 8, deadline))
            .and_then(|length| {
                let length = u64::take(&mut length.as_slice()).map_err(|e| ReadFailure::Io(std::io::Error::other(e)))?;
                read_exact_by(&mut child.answers, usize::try_from(length).unwrap_or(usize::MAX), deadline)
            });
        match exchanged {
            Ok(answer) => decode_answer(&what, &answer),
            Err(failure) => {
                let child = self.child.take().expect("checked above");
                let status = child.stop();
                Err(match failure {
                    ReadFailure::TimedOut => timed_out(&what, &self.limits),
                    ReadFailure::Io(e) => match explain_exit(&what, status, &self.limits) {
                        Err(why) => why,
                        Ok(()) => anyhow::anyhow!("{what}: lost the reading process: {e}"),
                    },
                })
            }
        }
    }
}

impl Child {
    /// Kill the child (it only reads) and reap it: how it ended.
    fn stop(self) -> std::io::Result<super::isolated::Exit> {
        drop(self.requests);
        // SAFETY: `pid` is our child, not yet reaped.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        wait_for(self.pid)
    }
}

impl<Q: Wire, A: Wire> Drop for ReadingProcess<Q, A> {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = child.stop();
        }
    }
}

fn pipe(what: &str) -> Result<(c_int, c_int)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("{what}: cannot create a pipe for the reading process: {}", std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// Exactly `count` bytes from `reader`, or the failure: the deadline passed, or the pipe closed.
fn read_exact_by(reader: &mut std::fs::File, count: usize, deadline: Instant) -> Result<Vec<u8>, ReadFailure> {
    // A corrupt length is bounded by what the child could have been allowed to send.
    let mut out = Vec::with_capacity(count.min(PIPE_BYTES as usize));
    let mut buffer = vec![0u8; PIPE_BYTES as usize];
    while out.len() < count {
        wait_readable(reader, deadline)?;
        let want = (count - out.len()).min(buffer.len());
        match reader.read(&mut buffer[..want]) {
            Ok(0) => return Err(ReadFailure::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the reading process ended"))),
            Ok(n) => out.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
    Ok(out)
}

/// The child: answer each framed request until the parent closes the pipe.
fn serve_requests<Q: Wire, A: Wire>(
    requests: c_int,
    answers: c_int,
    parent: libc::pid_t,
    limits: ChildLimits,
    mut serve: impl FnMut(Q) -> Result<A>,
) -> ! {
    // Whole seconds, at least one: what `alarm` counts in.
    let seconds = limits.time.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
    // SAFETY: a freshly forked child; `requests` and `answers` are its pipes to the parent.
    unsafe {
        prepare_child(&[requests, answers], parent, limits.memory_bytes);
        // PR_SET_PDEATHSIG fires when the *thread* that forked this child ends, not its process:
        // a reading process outlives that thread (a batch loader's, which ends with its epoch).
        // It sees its parent leave by the end of its request pipe instead, and a request cannot
        // outlive the parent by more than the time limit (below).
        libc::prctl(libc::PR_SET_PDEATHSIG, 0);
        // A terminal's Ctrl-C reaches the whole process group. The parent stops cleanly at the
        // end of its step (saving a checkpoint), which may need one more batch: this child
        // outlives the keystroke and ends with the parent (its pipe closed).
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    loop {
        let Some(body) = read_frame(requests) else {
            // SAFETY: the parent is done (or gone); leave without the parent's destructors.
            unsafe { libc::_exit(0) }
        };
        // SIGALRM's default action ends a request that runs past the time limit, whether or
        // not the parent is still there to kill it.
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(seconds) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Q::take(&mut body.as_slice()).and_then(&mut serve)));
        // SAFETY: as above.
        unsafe { libc::alarm(0) };
        let answer = encode_answer(outcome);
        let mut frame = Vec::with_capacity(answer.len() + 8);
        (answer.len() as u64).put(&mut frame);
        frame.extend_from_slice(&answer);
        write_all_or_exit(answers, &frame);
    }
}

/// One length-framed request, or `None` when the pipe closed.
fn read_frame(fd: c_int) -> Option<Vec<u8>> {
    let mut length = [0u8; 8];
    read_fd_exact(fd, &mut length)?;
    let length = usize::try_from(u64::from_ne_bytes(length)).ok()?;
    let mut body = vec![0u8; length];
    read_fd_exact(fd, &mut body)?;
    Some(body)
}

fn read_fd_exact(fd: c_int, buffer: &mut [u8]) -> Option<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: the unfilled rest of a live buffer.
        let read = unsafe { libc::read(fd, buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled) };
        if read < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if read <= 0 {
            return None;
        }
        filled += read as usize;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: ChildLimits = ChildLimits { time: Duration::from_secs(30), memory_bytes: 1 << 30 };

    /// The child keeps its state between requests, and an error answers one request only.
    #[test]
    fn one_child_answers_many_requests() {
        let mut calls = 0u64;
        let mut process = ReadingProcess::start("reading f.h5", LIMITS, move |n: u64| {
            calls += 1;
            if n == 0 {
                bail!("no sample 0");
            }
            Ok((calls, std::process::id() as u64))
        })
        .unwrap();
        let (first, pid) = process.ask(&5).unwrap();
        assert_ne!(pid, std::process::id() as u64, "served in another process");
        assert_eq!(process.ask(&0).unwrap_err().to_string(), "no sample 0");
        assert_eq!(process.ask(&7).unwrap(), (first + 2, pid), "the same child, its state kept");
    }

    /// A reading process started by a thread that has since ended (a batch loader's, at the
    /// end of its epoch) still answers: it belongs to the process, not to that thread.
    #[test]
    fn a_child_outlives_the_thread_that_started_it() {
        let mut process = std::thread::spawn(|| {
            let mut process = ReadingProcess::start("reading f.h5", LIMITS, |n: u64| Ok(n + 1)).unwrap();
            assert_eq!(process.ask(&1).unwrap(), 2); // the child is ready before the thread ends
            process
        })
        .join()
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(process.ask(&41).unwrap(), 42);
    }

    /// A crash ends the child with an error naming the file; later requests are refused.
    #[test]
    fn a_crash_in_the_child_is_an_error_then_nothing_more() {
        let mut process = ReadingProcess::start("reading f.h5", LIMITS, |crash: u8| {
            if crash == 1 {
                // SAFETY: not safe at all, deliberately: a write through a null pointer ends this
                // child with SIGSEGV, as libhdf5's bugs do.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
            }
            Ok(0u64)
        })
        .unwrap();
        assert_eq!(process.ask(&0).unwrap(), 0);
        let error = process.ask(&1).unwrap_err().to_string();
        assert!(error.starts_with("reading f.h5: libhdf5 crashed (SIGSEGV)"), "{error}");
        let error = process.ask(&0).unwrap_err().to_string();
        assert_eq!(error, "reading f.h5: an earlier read of this file failed");
    }

    /// A child that never answers is stopped at the time limit.
    #[test]
    fn a_hung_child_is_stopped_at_the_limit() {
        let limits = ChildLimits { time: Duration::from_millis(300), ..LIMITS };
        let mut process = ReadingProcess::start("reading f.h5", limits, |_: u8| -> Result<u8> {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .unwrap();
        let error = process.ask(&0).unwrap_err().to_string();
        assert!(error.starts_with("reading f.h5: libhdf5 did not finish in 0 s"), "{error}");
    }
}
