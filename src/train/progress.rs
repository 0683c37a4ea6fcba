//! Keras's per-epoch progress output (`keras/utils/generic_utils.py::Progbar`, Keras 2.2):
//! `Epoch 1/2`, then `1080/1080 [==============================] - 7s 6ms/step - loss: 2.1234 -
//! accuracy: 0.3120`, redrawn with an ETA while the epoch runs. `verbose` 0 is silent, 2 prints
//! one line per epoch (` - 7s - loss: … - accuracy: …`); when stdout is not a terminal,
//! verbose 1 behaves as 2, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::pyfmt::python_exponent;

const WIDTH: usize = 30;

pub struct Progress {
    target: usize,
    verbose: u8,
    interactive: bool,
    /// Draw on stderr (for commands whose stdout carries results, e.g. `classify`).
    on_stderr: bool,
    start: Instant,
    last_draw: Option<Instant>,
}

impl Progress {
    /// Print `Epoch e/E` and start timing an epoch of `target` samples.
    pub fn start_epoch(epoch: usize, epochs: usize, target: usize, verbose: u8) -> Self {
        let interactive = std::io::stdout().is_terminal();
        if verbose > 0 {
            println!("Epoch {epoch}/{epochs}");
        }
        Self { target, verbose, interactive, on_stderr: false, start: Instant::now(), last_draw: None }
    }

    /// A bar over `target` steps drawn on stderr, only when stderr is a terminal (Keras's
    /// `predict` bar: `3/12 [======>.......] - ETA: 4s`), so piped results stay clean.
    pub fn on_stderr(target: usize) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let verbose = if interactive { 1 } else { 0 };
        Self { target, verbose, interactive, on_stderr: true, start: Instant::now(), last_draw: None }
    }

    /// Erase a drawn bar, so lines printed next (e.g. results on the same terminal) start clean;
    /// the next `update` draws it again below them.
    pub fn clear(&self) {
        if self.last_draw.is_some() && self.interactive && self.verbose == 1 {
            self.emit("\r\x1b[2K");
        }
    }

    fn emit(&self, text: &str) {
        if self.on_stderr {
            eprint!("{text}");
            let _ = std::io::stderr().flush();
        } else {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
    }

    /// Redraw the bar after `seen` samples (verbose 1 on a terminal, at most ~20 times a second).
    pub fn update(&mut self, seen: usize, logs: &[(&str, f64)]) {
        if self.verbose != 1 || !self.interactive || seen >= self.target {
            return;
        }
        let now = Instant::now();
        if self.last_draw.is_some_and(|t| now.duration_since(t).as_millis() < 50) {
            return;
        }
        self.last_draw = Some(now);
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let eta = elapsed / seen.max(1) as f64 * (self.target - seen) as f64;
        self.emit(&format!("\r{} - ETA: {}{}", bar(seen, self.target), eta_text(eta), values(logs)));
    }

    /// The epoch's final line, with the epoch-end values (validation included).
    pub fn finish(&self, logs: &[(&str, f64)]) {
        let elapsed = self.start.elapsed().as_secs_f64();
        match self.verbose {
            0 => {}
            1 if self.interactive => {
                let per_step = elapsed / self.target.max(1) as f64;
                self.emit(&format!("\r{} - {elapsed:.0}s {}{}\n", bar(self.target, self.target), step_time(per_step), values(logs)));
            }
            _ => self.emit(&format!(" - {elapsed:.0}s{}\n", values(logs))),
        }
    }
}

/// `  32/1080 [>.............................]`
fn bar(current: usize, target: usize) -> String {
    let digits = target.max(1).to_string().len();
    let mut text = format!("{current:>digits$}/{target} [");
    let filled = WIDTH * current / target.max(1);
    if filled > 0 {
        text.push_str(&"=".repeat(filled - 1));
        text.push(if current < target { '>' } else { '=' });
    }
    text.push_str(&".".repeat(WIDTH - filled));
    text.push(']');
    text
}

fn eta_text(seconds: f64) -> String {
    let s = seconds as u64;
    if s > 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else if s > 60 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn step_time(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.0}s/step")
    } else if seconds >= 1e-3 {
        format!("{:.0}ms/step", seconds * 1e3)
    } else {
        format!("{:.0}us/step", seconds * 1e6)
    }
}

/// ` - loss: 2.1234 - accuracy: 0.3120` (`%.4f`, or `%.4e` for tiny values, as Keras).
pub fn values(logs: &[(&str, f64)]) -> String {
    logs.iter()
        .map(|(name, value)| {
            if value.abs() > 1e-3 || *value == 0.0 {
                format!(" - {name}: {value:.4}")
            } else {
                format!(" - {name}: {}", python_exponent(&format!("{value:.4e}")))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_matches_keras() {
        assert_eq!(bar(1080, 1080), "1080/1080 [==============================]");
        assert_eq!(bar(32, 1080), "  32/1080 [..............................]");
        assert_eq!(bar(540, 1080), " 540/1080 [==============>...............]");
        assert_eq!(values(&[("loss", 2.12345), ("accuracy", 0.0)]), " - loss: 2.1235 - accuracy: 0.0000");
        assert_eq!(step_time(0.0061), "6ms/step");
        assert_eq!(values(&[("loss", 0.00012345)]), " - loss: 1.2345e-04");
    }
}
