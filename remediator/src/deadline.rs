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
use axum::http::StatusCode;
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

/// The answer for a body that could not be read: 408 when its deadline ended it, 413 when it
/// passed the reader's size limit, 400 for anything else (the client reset the connection).
/// Handlers answer with it so their own counters agree with what the client is told.
pub fn unread_body_status(e: &axum::Error) -> StatusCode {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if err.is::<BodyTimeout>() {
            return StatusCode::REQUEST_TIMEOUT;
        }
        if err.is::<http_body_util::LengthLimitError>() {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        cause = err.source();
    }
    StatusCode::BAD_REQUEST
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    /// A body that fails with its error once, or (without one) never yields anything.
    struct Scripted(Option<std::io::Error>);

    impl HttpBody for Scripted {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(e) => Poll::Ready(Some(Err(e))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_never_ends_is_a_timeout_not_a_size() {
        let never = Body::new(Scripted(None));
        let (body, fate) = DeadlineBody::new(never, Duration::from_millis(50));
        let e = to_bytes(Body::new(body), 1024).await.expect_err("deadline");
        assert!(fate.expired());
        assert_eq!(unread_body_status(&e), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_size() {
        let (body, fate) = DeadlineBody::new(Body::from(vec![b'x'; 2048]), Duration::from_secs(5));
        let e = to_bytes(Body::new(body), 1024).await.expect_err("limit");
        assert!(!fate.expired());
        assert_eq!(unread_body_status(&e), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_broken_body_is_a_bad_request() {
        let broken = Body::new(Scripted(Some(std::io::Error::other("connection reset"))));
        let (body, _) = DeadlineBody::new(broken, Duration::from_secs(5));
        let e = to_bytes(Body::new(body), 1024).await.expect_err("broken");
        assert_eq!(unread_body_status(&e), StatusCode::BAD_REQUEST);
    }
}
