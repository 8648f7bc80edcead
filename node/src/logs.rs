//! The node's log output: human-readable lines (`--log-format text`, the default) or one JSON
//! object per line (`--log-format json`) for a log pipeline.
//!
//! A JSON line holds `ts` (RFC 3339), `level`, `node` (this node's id, on every line), `target`,
//! `message`, the event's own fields, the fields of every span it happened in (`request_id`,
//! `method` and `path` of an HTTP request, `room` of a room actor), and `spans`, their names from
//! the outermost. The reserved keys win over a field of the same name.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> anyhow::Result<LogFormat> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => anyhow::bail!("--log-format must be text or json, not {other}"),
        }
    }
}

/// Installs the node's logger on stdout: `filter` in `format`, every JSON line naming `node`.
pub fn init(filter: &str, format: LogFormat, node: &str) {
    let builder = tracing_subscriber::fmt().with_env_filter(EnvFilter::new(filter));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            builder.fmt_fields(JsonFields::new()).event_format(JsonLines { node: node.to_owned() }).init();
        }
    }
}

/// The JSON line format (see the module doc).
struct JsonLines {
    node: String,
}

const RESERVED: [&str; 6] = ["ts", "level", "node", "target", "message", "spans"];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                spans.push(Value::from(span.name()));
                let ext = span.extensions();
                // `JsonFields` keeps each span's fields as a JSON object.
                let fields =
                    ext.get::<FormattedFields<N>>().and_then(|f| serde_json::from_str::<Value>(&f.fields).ok());
                if let Some(Value::Object(fields)) = fields {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        let meta = event.metadata();
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let message = line.remove("message").unwrap_or(Value::from(""));
        let mut out = Map::with_capacity(line.len() + RESERVED.len());
        out.insert("ts".into(), ts.into());
        out.insert("level".into(), meta.level().as_str().into());
        out.insert("node".into(), self.node.as_str().into());
        out.insert("target".into(), meta.target().into());
        out.insert("message".into(), message);
        for (k, v) in line {
            if !RESERVED.contains(&k.as_str()) {
                out.insert(k, v);
            }
        }
        if !spans.is_empty() {
            out.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(out))
    }
}

/// Records an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or_else(|| value.to_string().into(), Value::Number);
        self.0.insert(field.name().into(), v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_has_the_node_its_fields_and_its_spans_fields() {
        let out = Lines::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines { node: "n7".into() })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", request_id = "r-1", path = "/x");
            let _r = request.enter();
            let room = tracing::info_span!("room", room = 5);
            let _g = room.enter();
            tracing::warn!(seq = 3u64, node = "not me", ok = true, "lease {} lost", "quietly");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert_eq!(text.lines().count(), 1);
        assert_eq!(line["node"], "n7", "the node's own id wins over a field named node");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "lease quietly lost");
        assert_eq!((line["seq"].as_u64(), line["ok"].as_bool()), (Some(3), Some(true)));
        assert_eq!((line["request_id"].as_str(), line["room"].as_i64()), (Some("r-1"), Some(5)));
        assert_eq!(line["spans"], serde_json::json!(["request", "room"]));
        assert!(line["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
