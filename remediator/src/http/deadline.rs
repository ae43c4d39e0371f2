//! A request body with one deadline for all of it, which also tells whether it was read to
//! its end.
//!
//! tower-http's body timeout restarts with every frame, so a client sending a byte every few
//! seconds never trips it; this one does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// The body ended because its deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
pub struct BodyTimeout(Duration);

/// What became of a body, seen from the middleware after the handler dropped it.
#[derive(Debug, Default)]
pub struct BodyFate {
    expired: AtomicBool,
    finished: AtomicBool,
}

impl BodyFate {
    /// The deadline ended the body.
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::SeqCst)
    }

    /// The body was read to its end (or was empty).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
    fate: Arc<BodyFate>,
}

impl DeadlineBody {
    pub fn new(inner: Body, limit: Duration) -> (Self, Arc<BodyFate>) {
        let fate = Arc::new(BodyFate::default());
        if inner.is_end_stream() {
            fate.finished.store(true, Ordering::SeqCst);
        }
        let body = DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
            fate: fate.clone(),
        };
        (body, fate)
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() || self.inner.is_end_stream() {
                self.fate.finished.store(true, Ordering::SeqCst);
            }
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.fate.expired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(self.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
