//! The access line, formatted without the formatting machinery.
//!
//! tracing-subscriber's formatters go through `core::fmt` for every field, padding and
//! all: 16,600 instructions per access line, a tenth of a proxied request (BENCHMARKS.md).
//! [`LineFormat`] writes the access line (`secretgate::access`, outside any span) with
//! plain string appends instead, byte for byte what the stock formatter writes, text or
//! JSON, and hands every other event to the stock formatter. In the binary, without
//! colours and outside any span, the access line does not even go through tracing:
//! [`write_access`] writes the same bytes to the same sink (tracing's dispatch and one
//! visitor call per field were ~3k of its ~5k instructions). The tests below hold all
//! three to the same output.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, Format, FormatEvent, FormatFields, Json, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The target of the access line (trace.rs).
pub const ACCESS: &str = "secretgate::access";

/// The event formatter: fast for the access line, stock for everything else.
#[derive(Debug)]
pub struct LineFormat {
    json: bool,
    text_format: Format,
    json_format: Format<Json>,
}

impl LineFormat {
    /// Lines as `fmt()`'s default (text) formatter writes them.
    pub fn text() -> Self {
        Self {
            json: false,
            text_format: Format::default(),
            json_format: Format::default().json(),
        }
    }

    /// Lines as `fmt().json()` writes them (use with `JsonFields`).
    pub fn json() -> Self {
        Self {
            json: true,
            ..Self::text()
        }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        // Text with colours, a span around it (debug level) or another target: the stock
        // formatter, which knows how to write those.
        let colours = !self.json && writer.has_ansi_escapes();
        if meta.target() != ACCESS || colours || ctx.lookup_current().is_some() {
            return if self.json {
                self.json_format.format_event(ctx, writer, event)
            } else {
                self.text_format.format_event(ctx, writer, event)
            };
        }
        let mut line = String::with_capacity(320);
        open_line(&mut line, self.json, *meta.level(), SystemTime::now());
        if self.json {
            event.record(&mut JsonFieldsVisitor {
                line: &mut line,
                first: true,
            });
        } else {
            event.record(&mut TextFieldsVisitor {
                line: &mut line,
                first: true,
            });
        }
        close_line(&mut line, self.json);
        writer.write_str(&line)
    }
}

/// An access line up to its fields: the time, the level and the target, text or JSON, as
/// the stock formatters write them.
fn open_line(line: &mut String, json: bool, level: tracing::Level, now: SystemTime) {
    if json {
        line.push_str("{\"timestamp\":\"");
        timestamp(line, now);
        line.push_str("\",\"level\":\"");
        line.push_str(level.as_str());
        line.push_str("\",\"fields\":{");
    } else {
        timestamp(line, now);
        line.push(' ');
        // Right-aligned in five columns, as the stock formatter pads it.
        let level = level.as_str();
        for _ in level.len()..5 {
            line.push(' ');
        }
        line.push_str(level);
        line.push(' ');
        line.push_str(ACCESS);
        line.push_str(": ");
    }
}

/// What follows the fields of an access line [`open_line`] began.
fn close_line(line: &mut String, json: bool) {
    if json {
        line.push_str("},\"target\":");
        json_str(line, ACCESS);
        line.push_str("}\n");
    } else {
        line.push('\n');
    }
}

/// A string field's value as the stock text formatter writes it: in Debug quotes.
fn text_str(line: &mut String, value: &str) {
    if value.bytes().all(plain) {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else {
        let _ = write!(line, "{value:?}");
    }
}

/// `key=value` pairs as the stock text formatter writes them: the message bare, strings
/// in Debug quotes, numbers plain, one space between.
struct TextFieldsVisitor<'a> {
    line: &'a mut String,
    first: bool,
}

impl TextFieldsVisitor<'_> {
    fn key(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.line.push(' ');
        }
        let name = field.name();
        if name != "message" {
            self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.line.push('=');
        }
    }
}

impl Visit for TextFieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        if field.name() == "message" {
            self.line.push_str(value);
        } else {
            text_str(self.line, value);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(self.line, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        let _ = write!(self.line, "{value:?}");
    }
}

/// The fields object as the stock JSON formatter writes it.
struct JsonFieldsVisitor<'a> {
    line: &'a mut String,
    first: bool,
}

impl JsonFieldsVisitor<'_> {
    fn key(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.line.push(',');
        }
        json_str(self.line, field.name());
        self.line.push(':');
    }
}

impl Visit for JsonFieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_str(self.line, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        push_u64(self.line, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.line, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        json_str(self.line, &format!("{value:?}"));
    }
}

/// Printable ASCII that Debug writes as it is (not `"` or `\`).
fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// A JSON string literal, escaped as serde_json escapes it.
fn json_str(line: &mut String, value: &str) {
    if value.bytes().all(plain) {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else if let Ok(quoted) = serde_json::to_string(value) {
        line.push_str(&quoted);
    }
}

fn push_u64(line: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    line.push_str(std::str::from_utf8(&digits[i..]).unwrap_or("0"));
}

thread_local! {
    /// The second last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS.` text.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// `2026-12-02T00:13:16.311470Z`, as the stock formatters write the time (RFC 3339, UTC,
/// microseconds). The date and time of day are computed once a second per thread.
fn timestamp(line: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        prefix = civil(secs);
        SECOND.set((secs, prefix));
    }
    // Only ASCII was written.
    line.push_str(std::str::from_utf8(&prefix).unwrap_or(""));
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut m = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    line.push_str(std::str::from_utf8(&digits).unwrap_or(""));
    line.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time in seconds (proleptic Gregorian calendar, the
/// days-to-civil conversion of Howard Hinnant's `chrono`-compatible date algorithms).
fn civil(secs: u64) -> [u8; 20] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 20];
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, (rem / 3600) as i64, 2);
    put(14, (rem / 60 % 60) as i64, 2);
    put(17, (rem % 60) as i64, 2);
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out
}

/// The stock formatter's field formatter for [`LineFormat::text`].
pub type TextFields = format::DefaultFields;

/// One field of the access line, as tracing records it.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// A `&str` (`record_str`): quoted in text, a JSON string.
    Str(&'a str),
    /// A `Display` value (`record_debug` of `field::display`): bare in text, a JSON string.
    Shown(&'a str),
    /// An integer (`record_u64`).
    U64(u64),
}

/// Whether, and how, [`write_access`] writes: set once, by the binary, when its subscriber
/// is the one [`write_access`] reproduces (a [`LineFormat`] writing to
/// [`crate::logsink::Sink`] without colours). `true` is JSON.
static DIRECT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Lets [`write_access`] write access lines itself (see [`DIRECT`]). Only the first call
/// counts.
pub fn write_access_directly(json: bool) {
    let _ = DIRECT.set(json);
}

/// Writes an access line without going through tracing: what [`LineFormat`] would write
/// for the event (`message` first, then `fields` in order, as the event macro records
/// them), into the same sink. Returns `false`, having written nothing, unless the binary
/// asked for it ([`write_access_directly`]); the caller then emits the event. Whether the
/// line is wanted at all (the level filter) is the caller's check.
///
/// Why: tracing's dispatch and one visitor call per field cost ~5k instructions per access
/// line, 3.8% of a proxied request (issue 13's goal is 3%; BENCHMARKS.md section 4).
pub fn write_access(level: tracing::Level, fields: &[(&str, Value<'_>)], message: &str) -> bool {
    let Some(&json) = DIRECT.get() else {
        return false;
    };
    let mut line = String::with_capacity(320);
    access_line_into(&mut line, json, level, SystemTime::now(), fields, message);
    crate::logsink::write_line(level, line.as_bytes());
    true
}

/// The line [`write_access`] writes (a separate function for the tests).
fn access_line_into(
    line: &mut String,
    json: bool,
    level: tracing::Level,
    now: SystemTime,
    fields: &[(&str, Value<'_>)],
    message: &str,
) {
    open_line(line, json, level, now);
    if json {
        line.push_str("\"message\":");
        json_str(line, message);
        for (name, value) in fields {
            line.push(',');
            json_str(line, name);
            line.push(':');
            match value {
                Value::Str(v) | Value::Shown(v) => json_str(line, v),
                Value::U64(v) => push_u64(line, *v),
            }
        }
    } else {
        line.push_str(message);
        for (name, value) in fields {
            line.push(' ');
            line.push_str(name);
            line.push('=');
            match value {
                Value::Str(v) => text_str(line, v),
                Value::Shown(v) => line.push_str(v),
                Value::U64(v) => push_u64(line, *v),
            }
        }
    }
    close_line(line, json);
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    /// Access lines with every kind of value the real one has (trace.rs), some needing
    /// escapes, and one event of another target.
    fn emit() {
        for (error, path) in [
            (None, "/oauth2/token"),
            (Some("client authentication failed: wrong secret"), "/a%20b"),
            (Some("quote \" back\\slash\ttab é \u{1b}[31m"), "/x"),
        ] {
            tracing::event!(
                target: "secretgate::access",
                tracing::Level::INFO,
                request_id = "e35dd911-2",
                method = "POST",
                path,
                status = 401u16,
                latency_us = 1234567u64,
                route = "protected",
                client_id = "bench-basic",
                error,
                "{}",
                "response"
            );
            tracing::event!(target: "secretgate::access", tracing::Level::WARN, status = 502u16, "{}", "abandoned");
        }
        tracing::info!(answer = 42, "another target");
    }

    /// Lines with the timestamp cut out (it is checked on its own below); the rest
    /// byte for byte, key order included.
    fn without_time(text: &str, json: bool) -> Vec<String> {
        text.lines()
            .map(|l| {
                let (start, end) = if json {
                    let start = l.find("{\"timestamp\":\"").unwrap() + 14;
                    (start, start + l[start..].find('"').unwrap())
                } else {
                    (0, l.find(' ').unwrap())
                };
                assert!(l[start..end].ends_with('Z'), "{l}");
                format!("{}T{}", &l[..start], &l[end..])
            })
            .collect()
    }

    #[test]
    fn text_access_lines_are_what_the_stock_formatter_writes() {
        let stock = stock_lines(false, emit);
        let ours = Buf::default();
        let s = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(ours.clone())
            .event_format(LineFormat::text())
            .finish();
        tracing::subscriber::with_default(s, emit);
        let ours = ours.take();
        assert_eq!(ours.lines().count(), 7);
        assert_eq!(without_time(&ours, false), without_time(&stock, false));
    }

    #[test]
    fn json_access_lines_are_what_the_stock_formatter_writes() {
        let stock = stock_lines(true, emit);
        let ours = Buf::default();
        let s = tracing_subscriber::fmt()
            .with_writer(ours.clone())
            .fmt_fields(JsonFields::new())
            .event_format(LineFormat::json())
            .finish();
        tracing::subscriber::with_default(s, emit);
        let ours = ours.take();
        assert_eq!(ours.lines().count(), 7);
        assert_eq!(without_time(&ours, true), without_time(&stock, true));
    }

    /// What tracing-subscriber's own text (no colours) or JSON formatter writes for the
    /// events `emit` makes.
    fn stock_lines(json: bool, emit: fn()) -> String {
        let stock = Buf::default();
        let text = tracing_subscriber::fmt().with_ansi(false);
        if json {
            let s = text.json().with_writer(stock.clone()).finish();
            tracing::subscriber::with_default(s, emit);
        } else {
            let s = text.with_writer(stock.clone()).finish();
            tracing::subscriber::with_default(s, emit);
        }
        stock.take()
    }

    /// Access lines as trace.rs writes them: every field the real event has, the optional
    /// ones present and absent, values needing escapes, both levels.
    /// (WARN?, client and peer address, `error`, `shadow_outcome`, path)
    type Case = (
        bool,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    const CASES: [Case; 4] = [
        (false, Some("10.0.0.1"), None, None, "/oauth2/token"),
        (
            false,
            None,
            Some("client authentication failed"),
            Some("success"),
            "/a%20b",
        ),
        (
            true,
            Some("2001:db8::1"),
            Some("quote \" tab\t é \u{1b}[31m"),
            None,
            "/x\"y",
        ),
        (false, Some("127.0.0.1"), None, Some("failure"), "/é"),
    ];

    fn emit_cases() {
        for (warn, addr, error, shadow, path) in CASES {
            let addr = addr.map(tracing::field::display);
            macro_rules! event {
                ($level:expr) => {
                    tracing::event!(
                        target: "secretgate::access",
                        $level,
                        request_id = "e35dd911-2",
                        client_addr = addr,
                        peer = addr,
                        method = "POST",
                        path,
                        status = 401u16,
                        latency_us = 1234567u64,
                        route = "protected",
                        client_id = "bench-basic",
                        auth_method = "client_secret_basic",
                        outcome = "-",
                        error,
                        shadow_outcome = shadow,
                        "{}",
                        "response"
                    )
                };
            }
            if warn {
                event!(tracing::Level::WARN);
            } else {
                event!(tracing::Level::INFO);
            }
        }
    }

    fn direct_lines(json: bool) -> String {
        let mut out = String::new();
        for (warn, addr, error, shadow, path) in CASES {
            let mut fields = vec![("request_id", Value::Str("e35dd911-2"))];
            if let Some(a) = addr {
                fields.push(("client_addr", Value::Shown(a)));
                fields.push(("peer", Value::Shown(a)));
            }
            fields.extend([
                ("method", Value::Str("POST")),
                ("path", Value::Str(path)),
                ("status", Value::U64(401)),
                ("latency_us", Value::U64(1234567)),
                ("route", Value::Str("protected")),
                ("client_id", Value::Str("bench-basic")),
                ("auth_method", Value::Str("client_secret_basic")),
                ("outcome", Value::Str("-")),
            ]);
            if let Some(e) = error {
                fields.push(("error", Value::Str(e)));
            }
            if let Some(s) = shadow {
                fields.push(("shadow_outcome", Value::Str(s)));
            }
            let level = if warn {
                tracing::Level::WARN
            } else {
                tracing::Level::INFO
            };
            access_line_into(
                &mut out,
                json,
                level,
                SystemTime::now(),
                &fields,
                "response",
            );
        }
        out
    }

    #[test]
    fn direct_access_lines_are_what_the_stock_formatter_writes() {
        for json in [false, true] {
            let (stock, ours) = (stock_lines(json, emit_cases), direct_lines(json));
            assert_eq!(ours.lines().count(), CASES.len());
            assert_eq!(without_time(&ours, json), without_time(&stock, json));
        }
    }

    #[test]
    fn without_the_binarys_subscriber_nothing_is_written_directly() {
        // The unit tests never call write_access_directly: the caller emits the event.
        assert!(!write_access(tracing::Level::INFO, &[], "response"));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_microseconds() {
        let at = |secs: u64, micros: u32| {
            let mut s = String::new();
            timestamp(
                &mut s,
                UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000),
            );
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_900_000_000, 123_456), "2030-03-17T17:46:40.123456Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        // The cached second is not reused for another second.
        assert_eq!(at(1_900_000_001, 0), "2030-03-17T17:46:41.000000Z");
        assert_eq!(at(1_900_000_000, 1), "2030-03-17T17:46:40.000001Z");
    }
}
