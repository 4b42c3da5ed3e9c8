//! Where log lines go: standard error, written in batches by the worker threads.
//!
//! One `write(2)` per access line cost a proxied request more than the line's formatting
//! (BENCHMARKS.md). A worker thread ([`buffer_this_thread`]) appends its lines to a buffer
//! of its own instead, with no lock and no wake-up of any other thread, and writes the
//! buffer out in one call when it passes [`FLUSH_AT`] bytes, when the worker's timer calls
//! [`flush`] (every [`FLUSH_EVERY`]), and when the worker ends. Nothing is lost: every
//! line is written before its thread exits, and a line at WARN or above is written at once
//! (after the buffered lines before it, so one thread's lines keep their order), so an
//! operator sees a failure without delay. Threads that are not workers (start-up, reload,
//! admin) write each line directly, as before.
//!
//! Lines from two workers never interleave inside a line: each buffer holds whole lines
//! and is written under the standard-error lock.

use std::cell::RefCell;
use std::io::Write;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// A worker's buffer is written out once it holds this much.
pub const FLUSH_AT: usize = 32 * 1024;

/// How often a worker writes out what its buffer holds: the longest a buffered line waits.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

thread_local! {
    /// `Some` on worker threads: lines not yet written.
    static BUFFER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// From now until the returned guard is dropped, this thread's log lines are batched.
/// Dropping the guard writes out what is left.
pub fn buffer_this_thread() -> Buffering {
    BUFFER.with(|b| *b.borrow_mut() = Some(Vec::with_capacity(FLUSH_AT + 1024)));
    Buffering(())
}

/// Batching for the current thread; see [`buffer_this_thread`].
#[must_use = "batching ends (and the buffer is written) when this is dropped"]
pub struct Buffering(());

impl Drop for Buffering {
    fn drop(&mut self) {
        flush();
        BUFFER.with(|b| *b.borrow_mut() = None);
    }
}

/// Writes out the current thread's buffered lines, if any.
pub fn flush() {
    BUFFER.with(|b| {
        if let Some(buf) = b.borrow_mut().as_mut() {
            write_out(buf);
        }
    });
}

fn write_out(buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    // Nowhere to report a failed write to: the lines are dropped, as the direct writer
    // would drop them.
    let _ = write_stderr(buf);
    buf.clear();
}

#[cfg(not(test))]
fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    std::io::stderr().lock().write_all(bytes)
}

#[cfg(test)]
thread_local! {
    /// What the tests' "standard error" received.
    static WRITTEN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn write_stderr(bytes: &[u8]) -> std::io::Result<()> {
    WRITTEN.with(|w| w.borrow_mut().extend_from_slice(bytes));
    Ok(())
}

/// The [`MakeWriter`] for the subscriber: batched on worker threads, direct elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

/// Writes one whole line at `level` as the subscriber's writer would (logline.rs's
/// direct access line).
pub fn write_line(level: Level, line: &[u8]) {
    let _ = LineWriter {
        urgent: level <= Level::WARN,
    }
    .write_all(line);
}

/// Writes one event's line.
pub struct LineWriter {
    urgent: bool,
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        LineWriter {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let buffered = BUFFER.with(|b| {
            let mut b = b.borrow_mut();
            let Some(buf) = b.as_mut() else {
                return false;
            };
            buf.extend_from_slice(line);
            if self.urgent || buf.len() >= FLUSH_AT {
                write_out(buf);
            }
            true
        });
        if !buffered {
            write_stderr(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> String {
        WRITTEN.with(|w| String::from_utf8(std::mem::take(&mut *w.borrow_mut())).unwrap())
    }

    fn buffered() -> usize {
        BUFFER.with(|b| b.borrow().as_ref().map_or(0, Vec::len))
    }

    #[test]
    fn info_lines_wait_urgent_lines_and_full_buffers_go_out_in_order() {
        let batching = buffer_this_thread();
        let mut info = LineWriter { urgent: false };
        let mut warn = LineWriter { urgent: true };
        info.write_all(b"one\n").unwrap();
        info.write_all(b"two\n").unwrap();
        assert_eq!(written(), "", "info lines wait for the flush");
        assert_eq!(buffered(), 8);
        warn.write_all(b"warn\n").unwrap();
        assert_eq!(
            written(),
            "one\ntwo\nwarn\n",
            "a warning goes at once, after them"
        );
        let big = "x".repeat(FLUSH_AT);
        info.write_all(big.as_bytes()).unwrap();
        assert_eq!(written(), big, "a full buffer is written out");
        info.write_all(b"three\n").unwrap();
        flush();
        assert_eq!(written(), "three\n", "the timer's flush");
        info.write_all(b"last\n").unwrap();
        drop(batching);
        assert_eq!(written(), "last\n", "the end of batching loses nothing");
        info.write_all(b"direct\n").unwrap();
        assert_eq!(written(), "direct\n", "after it, lines go directly");
    }

    #[test]
    fn threads_that_do_not_batch_write_each_line_directly() {
        let mut w = Sink.make_writer();
        w.write_all(b"a line\n").unwrap();
        assert_eq!(written(), "a line\n");
        assert_eq!(buffered(), 0);
    }
}
