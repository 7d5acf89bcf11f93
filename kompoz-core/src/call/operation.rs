//! [`Operation`]: what a layer calls — the user's closure, or the layers
//! inside it.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::Error;

/// Something a [`Layer`](super::Layer) can call, once or again: the
/// closure handed to [`Policy::call`](super::Policy::call), or that closure
/// behind the layers inside the one calling it.
///
/// Each `invoke` starts one attempt; a retry layer invokes its operation
/// again after a failure, a timeout drops the future of the attempt it gave
/// up on. Implement it to call a stack with something other than a closure;
/// the stack's layers implement nothing but [`Layer`](super::Layer).
pub trait Operation {
    /// The value of a successful attempt.
    type Output;
    /// The operation's own error (refusals are added by the layers).
    type Error;

    /// Starts one attempt.
    fn invoke(&mut self) -> impl Future<Output = Result<Self::Output, Error<Self::Error>>>;
}

impl<O: Operation + ?Sized> Operation for &mut O {
    type Output = O::Output;
    type Error = O::Error;

    #[inline]
    fn invoke(&mut self) -> impl Future<Output = Result<Self::Output, Error<Self::Error>>> {
        (**self).invoke()
    }
}

/// The user's closure as an [`Operation`]: its errors become
/// [`Error::Inner`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct FnOperation<F>(pub(crate) F);

impl<F, Fut, T, E> Operation for FnOperation<F>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Output = T;
    type Error = E;

    #[inline]
    fn invoke(&mut self) -> impl Future<Output = Result<T, Error<E>>> {
        MapInner { fut: (self.0)() }
    }
}

pin_project_lite::pin_project! {
    /// The user's future, its error wrapped in [`Error::Inner`].
    struct MapInner<Fut> {
        #[pin]
        fut: Fut,
    }
}

impl<Fut, T, E> Future for MapInner<Fut>
where
    Fut: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().fut.poll(cx) {
            Poll::Ready(out) => Poll::Ready(out.map_err(Error::Inner)),
            Poll::Pending => Poll::Pending,
        }
    }
}
