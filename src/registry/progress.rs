//! Transfer progress on a terminal: a line on stderr rewritten as bytes
//! arrive. Off unless the command-line tool turns it on for a terminal, so
//! build scripts and redirected output never see it.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns progress on when both stdout and stderr are terminals (CLI only).
#[cfg(feature = "producer")]
pub fn enable_on_terminal() {
    use std::io::IsTerminal;
    let terminal = io::stdout().is_terminal() && io::stderr().is_terminal();
    ENABLED.store(terminal, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Reports `done` of `total` bytes for `label`, at most every 100 ms, and a
/// final line when done.
pub(crate) struct Meter {
    label: String,
    total: u64,
    last: Option<Instant>,
}

impl Meter {
    pub(crate) fn new(label: impl Into<String>, total: u64) -> Option<Self> {
        enabled().then(|| Meter {
            label: label.into(),
            total,
            last: None,
        })
    }

    pub(crate) fn update(&mut self, done: u64) {
        let finished = done >= self.total;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !(due || finished) {
            return;
        }
        self.last = Some(Instant::now());
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut err = io::stderr().lock();
        let _ = write!(
            err,
            "\r{}: {:.1}/{:.1} MiB",
            self.label,
            mib(done),
            mib(self.total)
        );
        if finished {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// `reader` reporting its progress (when progress is on).
pub(crate) fn reader(
    reader: Box<dyn Read + Send>,
    label: String,
    total: u64,
) -> Box<dyn Read + Send> {
    match Meter::new(label, total) {
        Some(meter) => Box::new(Metered {
            inner: reader,
            meter,
            done: 0,
        }),
        None => reader,
    }
}

struct Metered {
    inner: Box<dyn Read + Send>,
    meter: Meter,
    done: u64,
}

impl Read for Metered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.meter.update(self.done);
        Ok(n)
    }
}
