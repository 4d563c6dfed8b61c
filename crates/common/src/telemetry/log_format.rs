//! The JSON log line with the trace it belongs to: `trace_id` and
//! `span_id` (the current span's) on every event inside a traced span,
//! whether or not spans are exported.

use std::cell::RefCell;
use std::fmt;

use opentelemetry::Context;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The field holding the trace id (32 hex digits).
pub const TRACE_ID_FIELD: &str = "trace_id";
/// The field holding the current span's id (16 hex digits).
pub const SPAN_ID_FIELD: &str = "span_id";

thread_local! {
    /// One line's text, reused: formatting a line allocates nothing once
    /// the buffer has grown to the longest line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Wraps a JSON event format: its object gains [`TRACE_ID_FIELD`] and
/// [`SPAN_ID_FIELD`] when the event happens inside a traced span.
#[derive(Debug, Clone)]
pub struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = current_ids() else {
            return self.0.format_event(ctx, writer, event);
        };
        LINE.with(|line| {
            // Taken only if a line is formatted while formatting a line.
            let Ok(mut line) = line.try_borrow_mut() else {
                return self.0.format_event(ctx, writer, event);
            };
            line.clear();
            self.0.format_event(ctx, Writer::new(&mut *line), event)?;
            write_with_ids(&line, trace_id, span_id, &mut writer)
        })
    }
}

/// The ids of the current OpenTelemetry span (the innermost traced span
/// entered on this thread), when there is one.
pub fn current_ids() -> Option<(TraceId, SpanId)> {
    Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context
            .is_valid()
            .then(|| (context.trace_id(), context.span_id()))
    })
}

/// Writes the JSON object `line` with the two id fields added before its
/// closing brace; a line that is not an object goes out unchanged.
fn write_with_ids(
    line: &str,
    trace_id: TraceId,
    span_id: SpanId,
    writer: &mut impl fmt::Write,
) -> fmt::Result {
    let object = line.trim_end();
    match object.strip_suffix('}') {
        Some(open) if open.starts_with('{') => {
            writer.write_str(open)?;
            if open.len() > 1 {
                writer.write_char(',')?;
            }
            write!(
                writer,
                "\"{TRACE_ID_FIELD}\":\"{trace_id}\",\"{SPAN_ID_FIELD}\":\"{span_id}\"}}"
            )?;
            writer.write_str(&line[object.len()..])
        }
        _ => writer.write_str(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_join_the_object() {
        let trace_id = TraceId::from(0x4bf9_u128);
        let span_id = SpanId::from(0xf067_u64);
        let mut out = String::new();
        write_with_ids("{\"message\":\"hi\"}\n", trace_id, span_id, &mut out).expect("write");
        let value: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(value["message"], "hi");
        assert_eq!(value[TRACE_ID_FIELD], format!("{trace_id}"));
        assert_eq!(value[SPAN_ID_FIELD], "000000000000f067");
        assert!(out.ends_with("}\n"));

        out.clear();
        write_with_ids("{}\n", trace_id, span_id, &mut out).expect("write");
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{out}"
        );

        out.clear();
        write_with_ids("plain text\n", trace_id, span_id, &mut out).expect("write");
        assert_eq!(out, "plain text\n");
    }
}
