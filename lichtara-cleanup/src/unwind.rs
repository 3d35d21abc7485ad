//! Catching a panic inside a future, so one failing hook or a panicking
//! `main` cannot stop the shutdown sequence.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// Resolves to `Err(payload)` when polling the inner future panics.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        // The future is never polled again after a panic: `Err` ends it.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// What polling a future once gave: its output or its panic if it
/// finished (`Ok`), the future itself if it is pending (`Err`).
pub(crate) type FirstPoll<F> = Result<Result<<F as Future>::Output, Box<dyn Any + Send>>, F>;

/// Polls a future once, in place, with a no-op waker. Most cleanup work
/// (no-ops, quick flushes) finishes at once and never needs a task of its
/// own; a pending future is handed back to be spawned, where the task's
/// poll registers the waker that counts.
pub(crate) fn poll_once<F: Future + Unpin>(mut future: F) -> FirstPoll<F> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut future).poll(&mut cx))) {
        Ok(Poll::Ready(output)) => Ok(Ok(output)),
        Ok(Poll::Pending) => Err(future),
        Err(payload) => Ok(Err(payload)),
    }
}

/// The message a panic was raised with, as the default panic hook shows it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catches_a_panic_and_keeps_its_message() {
        let caught = CatchUnwind::new(async { panic!("boom {}", 7) }).await;
        let payload = caught.expect_err("the panic is caught");
        assert_eq!(panic_message(&*payload), "boom 7");
    }

    #[test]
    fn one_poll_finishes_a_ready_future_catches_a_panic_and_hands_back_a_pending_one() {
        assert_eq!(
            poll_once(Box::pin(async { 5 })).ok().map(Result::ok),
            Some(Some(5))
        );
        let panicked = poll_once(Box::pin(async { panic!("at once") }));
        let payload = panicked.ok().expect("finished").expect_err("panicked");
        assert_eq!(panic_message(&*payload), "at once");
        let pending = poll_once(Box::pin(std::future::pending::<()>()));
        assert!(pending.is_err(), "a pending future comes back");
    }

    #[tokio::test]
    async fn passes_the_output_through() {
        assert_eq!(CatchUnwind::new(async { 5 }).await.ok(), Some(5));
    }
}
