//! Request and response bodies of an upstream client.
//!
//! A request body is either replayable bytes, which a retry can send again
//! for the cost of a reference count, or a stream (e.g. the body of a
//! request the gateway is forwarding) that is sent once and never retried.
//! A response body streams straight from the upstream connection and keeps
//! the endpoint's in-flight count until it ends, so least-outstanding and
//! peak-EWMA see long downloads as load. The call's deadline covers the body
//! too: an upstream that sends its headers and then stalls cannot hold the
//! caller (and whatever lock it holds while reading) past it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;

use crate::balance::InFlight;
use crate::error::BoxError;

/// The body of a request sent through an [`crate::UpstreamClient`].
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    /// Bytes, taken on the first poll of each try.
    Full(Option<Bytes>),
    /// A stream, polled through once.
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(bytes) => f
                .debug_tuple("Full")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl RequestBody {
    /// No body; replayable.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    /// A body of these bytes; replayable, so the request can be retried.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A streaming body (such as `axum::body::Body`), sent at most once:
    /// a request with one is never retried. A body that is already known to
    /// be empty (a forwarded GET) becomes [`RequestBody::empty`], so it stays
    /// retryable.
    pub fn streaming<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if body.is_end_stream() {
            return Self::empty();
        }
        Self {
            kind: Kind::Stream(body.map_err(Into::into).boxed_unsync()),
        }
    }

    /// Whether a retry can send this body again.
    pub fn is_replayable(&self) -> bool {
        matches!(self.kind, Kind::Full(_))
    }

    /// A copy for another try, if the body is replayable.
    pub(crate) fn try_clone(&self) -> Option<Self> {
        match &self.kind {
            Kind::Full(bytes) => Some(Self {
                kind: Kind::Full(bytes.clone()),
            }),
            Kind::Stream(_) => None,
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for RequestBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::full(bytes)
    }
}

impl From<String> for RequestBody {
    fn from(text: String) -> Self {
        Self::full(text)
    }
}

impl From<&'static str> for RequestBody {
    fn from(text: &'static str) -> Self {
        Self::full(Bytes::from_static(text.as_bytes()))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(body) => body.size_hint(),
        }
    }
}

/// The body of a response from an upstream, streamed as it arrives, until
/// the call's deadline: past it, the next frame is a [`BodyDeadlineExceeded`]
/// error.
///
/// Convert it with `axum::body::Body::new(body)` to send it on.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Incoming,
    in_flight: Option<InFlight>,
    deadline: Instant,
    /// Armed the first time the upstream keeps the caller waiting: a body
    /// that arrives with its headers costs no timer.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The upstream had not finished its response body by the call's deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the upstream did not finish its response body within the call's deadline")]
pub struct BodyDeadlineExceeded;

impl ResponseBody {
    /// Reads the whole body, refusing one larger than `limit` bytes (and,
    /// like every read of it, one not finished by the call's deadline).
    ///
    /// # Errors
    /// The body was larger than `limit`, was cut off, or outlived the deadline.
    pub async fn bytes(self, limit: usize) -> Result<Bytes, BoxError> {
        http_body_util::Limited::new(self, limit)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
    }

    pub(crate) fn new(inner: Incoming, in_flight: InFlight, deadline: Instant) -> Self {
        let in_flight = (!inner.is_end_stream()).then_some(in_flight);
        Self {
            inner,
            in_flight,
            deadline,
            timer: None,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_pending() {
            let deadline = self.deadline;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.in_flight = None;
            return Poll::Ready(Some(Err(BodyDeadlineExceeded.into())));
        }
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            // The request is over for load accounting once its body is.
            self.in_flight = None;
        }
        polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
