//! Logging with `tracing`: human-readable lines by default, one JSON object
//! per line when `telemetry.format = "json"`.
//!
//! Logged values often come from requests (a refused body's fields, a
//! path), so no value may start a line of its own: the human format
//! escapes control characters in every field, as JSON does in its strings.

use std::fmt;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetrySettings};

/// Installs the global subscriber; `RUST_LOG` wins over the configured
/// filter. A second call (tests) leaves the first subscriber in place.
pub fn init(settings: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match settings.format {
        LogFormat::Human => builder.fmt_fields(escaped_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

/// The human format's fields (`name=value`, the message bare), with the
/// control characters of every value escaped, whether it was recorded
/// with `%` (Display), `?` (Debug) or as the message.
fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug| {
            let text = format!("{value:?}");
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            write_escaped(writer, &text)
        },
    )
    .delimited(" ")
}

/// Writes `text` with each control character (and the Unicode line and
/// paragraph separators) as its escape, e.g. a newline as `\n`.
fn write_escaped(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            write!(writer, "{}", c.escape_default())?;
        } else {
            writer.write_char(c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("the buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_value_from_a_request_can_start_a_log_line_of_its_own() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(escaped_fields())
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let forged = "ACME\n2026-12-06T03:00:00.000000Z ERROR shipgate: forged\r\u{1b}[2K";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %forged);
            let _in_span = span.enter();
            tracing::info!(tenant = %forged, debugged = ?forged, plain = forged, "refused {forged}");
        });
        let output = String::from_utf8(captured.0.lock().expect("the buffer").clone())
            .expect("UTF-8 log output");
        assert_eq!(output.lines().count(), 1, "{output}");
        assert!(
            !output.contains('\r') && !output.contains('\u{1b}'),
            "{output:?}"
        );
        assert!(output.contains(r"tenant=ACME\n2026-12-06"), "{output}");
        assert!(output.contains(r"refused ACME\n2026"), "{output}");
        assert!(output.contains(r"path=ACME\n2026"), "{output}");
    }

    #[test]
    fn printable_text_is_written_as_is() {
        let mut line = String::new();
        write_escaped(&mut line, "tenant 'Ümlaut' \\ \"quoted\"").expect("written");
        assert_eq!(line, "tenant 'Ümlaut' \\ \"quoted\"");
        let mut line = String::new();
        write_escaped(&mut line, "a\tb\u{2028}c\u{7f}").expect("written");
        assert_eq!(line, r"a\tb\u{2028}c\u{7f}");
    }
}
