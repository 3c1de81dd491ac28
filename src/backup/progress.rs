//! Progress of long operations: a line redrawn on standard error when it is a terminal, and
//! nothing otherwise (the log says when each step starts and ends).
//!
//! Hand-written rather than `indicatif`: one line with a counter is all we show.

use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Rows,
}

pub struct Progress {
    label: String,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    tty: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(label: impl Into<String>, unit: Unit, total: Option<u64>) -> Progress {
        Progress {
            label: label.into(),
            unit,
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
        self.draw(true);
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        self.draw(false);
    }

    fn draw(&mut self, force: bool) {
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .last
                .is_some_and(|l| now - l < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let amount = |n: u64| match self.unit {
            Unit::Bytes => human_bytes(n),
            Unit::Rows => format!("{} rows", thousands(n)),
        };
        let text = match self.total {
            Some(t) if t > 0 => format!(
                "{}: {} of {} ({}%)",
                self.label,
                amount(self.done),
                amount(t),
                (self.done.min(t) * 100) / t
            ),
            _ => format!("{}: {}", self.label, amount(self.done)),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{text}");
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
        self.last = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that advances a progress line by the bytes it reads.
pub struct Counting<R> {
    pub inner: R,
    pub progress: Progress,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `3456, "row"` → `3,456 rows`; `1, "file"` → `1 file`.
pub fn count(n: u64, noun: &str) -> String {
    let noun = match (n, noun) {
        (1, _) => noun.to_owned(),
        (_, "entry") => "entries".to_owned(),
        _ => format!("{noun}s"),
    };
    format!("{} {noun}", thousands(n))
}

/// `1288490` → `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3456), "3,456");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(3456, "row"), "3,456 rows");
        assert_eq!(count(0, "entry"), "0 entries");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1_288_490), "1.2 MiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
