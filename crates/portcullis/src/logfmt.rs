//! Log line formats. Both add the request a line was written in (method, path, request
//! id: [`portcullis_service::audit::RequestLine`]), read from the request's context
//! rather than from a tracing span, so a request that logs nothing pays nothing.

use std::fmt;

use portcullis_service::audit::{with_current_request, RequestLine};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// `2026-12-01T22:40:00.123456Z  INFO request{method=GET path=/x request_id=…}: target: message k=v`:
/// the layout of tracing's default format, the request in the place of a span.
#[derive(Debug, Default)]
pub(crate) struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = w.has_ansi_escapes();
        // A `log` record bridged into tracing names its real target here.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if ansi {
            w.write_str("\x1b[2m")?;
        }
        SystemTime.format_time(&mut w)?;
        if ansi {
            w.write_str("\x1b[0m")?;
        }
        let level = *meta.level();
        if ansi {
            write!(w, " {}{level:>5}\x1b[0m ", colour(level))?;
        } else {
            write!(w, " {level:>5} ")?;
        }
        let mut scoped = with_current_request(|r| write_request(&mut w, r))
            .transpose()?
            .is_some();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                w.write_str(span.name())?;
                if let Some(f) = span.extensions().get::<FormattedFields<N>>() {
                    if !f.is_empty() {
                        write!(w, "{{{f}}}")?;
                    }
                }
                w.write_char(':')?;
                scoped = true;
            }
        }
        if scoped {
            w.write_char(' ')?;
        }
        write!(w, "{}: ", meta.target())?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn write_request(w: &mut Writer<'_>, r: &RequestLine) -> fmt::Result {
    write!(
        w,
        "request{{method={} path={} request_id={}}}:",
        r.method, r.path, r.id
    )
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// tracing's JSON format (one object per line), with a `request` member
/// (`method`, `path`, `request_id`) on lines written while a request runs.
#[derive(Debug)]
pub(crate) struct Json(format::Format<format::Json>);

impl Default for Json {
    fn default() -> Self {
        Self(format::format().json())
    }
}

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(request) = with_current_request(
            |r| serde_json::json!({"method": r.method, "path": &*r.path, "request_id": &*r.id}),
        ) else {
            return self.0.format_event(ctx, w, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The line is one JSON object: the request goes in as its first member.
        match line.strip_prefix('{') {
            Some(rest) if rest.trim_start().starts_with('"') => {
                write!(w, "{{\"request\":{request},{rest}")
            }
            _ => w.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use portcullis_service::audit::{with_context, AuditContext, RequestLine};
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{Json, Text};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().expect("lock").clone())
                .expect("utf-8")
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    fn context() -> Arc<AuditContext> {
        Arc::new(
            AuditContext::new(Some([127, 0, 0, 1].into()), None).serving(RequestLine {
                method: "POST",
                path: "/oauth/token".into(),
                id: "abc-1\"q".into(),
            }),
        )
    }

    /// One line outside a request, one inside, one inside a span inside the request.
    async fn log_three() {
        tracing::info!(n = 1, "outside");
        with_context(context(), async {
            tracing::warn!(n = 2, "inside");
            let span = tracing::info_span!("inner", k = "v");
            let _g = span.enter();
            tracing::info!("in a span");
        })
        .await;
    }

    #[tokio::test]
    async fn text_lines_carry_the_request_they_were_written_in() {
        let buf = Buffer::default();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(buf.clone())
                .event_format(Text),
        );
        let _g = tracing::subscriber::set_default(sub);
        log_three().await;
        let lines = buf.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let tail = |l: &str| l.split_once(' ').expect("timestamp").1.to_owned();
        assert!(lines[0].starts_with("20"), "timestamp first: {}", lines[0]);
        assert_eq!(
            tail(&lines[0]),
            " INFO portcullis::logfmt::tests: outside n=1"
        );
        assert_eq!(
            tail(&lines[1]),
            " WARN request{method=POST path=/oauth/token request_id=abc-1\"q}: \
             portcullis::logfmt::tests: inside n=2"
        );
        assert_eq!(
            tail(&lines[2]),
            " INFO request{method=POST path=/oauth/token request_id=abc-1\"q}:inner{k=\"v\"}: \
             portcullis::logfmt::tests: in a span"
        );
    }

    #[test]
    fn a_record_of_the_log_crate_is_shown_under_its_own_target() {
        let buf = Buffer::default();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(buf.clone())
                .event_format(Text),
        );
        let _g = tracing::subscriber::set_default(sub);
        tracing_log::format_trace(
            &log::Record::builder()
                .args(format_args!("from log"))
                .level(log::Level::Warn)
                .target("some_crate::module")
                .build(),
        )
        .expect("bridged");
        let lines = buf.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].ends_with(" WARN some_crate::module: from log"),
            "{}",
            lines[0]
        );
    }

    #[tokio::test]
    async fn json_lines_carry_the_request_as_a_member() {
        let buf = Buffer::default();
        let sub = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(buf.clone())
                .fmt_fields(JsonFields::new())
                .event_format(Json::default()),
        );
        let _g = tracing::subscriber::set_default(sub);
        log_three().await;
        let lines: Vec<serde_json::Value> = buf
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].get("request").is_none(), "{}", lines[0]);
        assert_eq!(lines[0]["fields"]["message"], "outside");
        assert_eq!(lines[0]["fields"]["n"], 1);
        let request =
            serde_json::json!({"method": "POST", "path": "/oauth/token", "request_id": "abc-1\"q"});
        for l in &lines[1..] {
            assert_eq!(l["request"], request, "{l}");
            assert_eq!(l["target"], "portcullis::logfmt::tests");
            assert!(l["timestamp"].as_str().is_some_and(|t| t.starts_with("20")));
        }
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["fields"]["message"], "inside");
        assert_eq!(lines[2]["span"]["name"], "inner");
        assert_eq!(lines[2]["span"]["k"], "v");
    }
}
