//! The response futures that are not specific to one layer.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use kompoz_core::call::Error;
use pin_project_lite::pin_project;

pin_project! {
    /// The response future of [`InnerError`](crate::InnerError): the inner
    /// future's error as [`Error::Inner`].
    pub struct MapInner<F> {
        #[pin]
        inner: F,
    }
}

impl<F> MapInner<F> {
    pub(crate) fn new(inner: F) -> Self {
        MapInner { inner }
    }
}

impl<F, T, E> Future for MapInner<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, Error<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Error::Inner)
    }
}

impl<F> fmt::Debug for MapInner<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapInner").finish_non_exhaustive()
    }
}
