//! One flat error for a whole stack: [`StackError`], and [`InnerError`] for
//! leaf services whose error type kompoz does not know.

use core::convert::Infallible;
use core::task::{Context, Poll};

use kompoz_core::call::Error;
use tower_layer::Layer;
use tower_service::Service;

/// A boxed, type-erased error: tower's and hyper's usual error type
/// (`tower::BoxError`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of the service under a kompoz layer, put into the one flat
/// [`Error<Self::Inner>`](Error) that the whole stack returns.
///
/// Every kompoz service returns `Error<E>`, where `E` is the error of the
/// *leaf* service at the bottom of the stack, however many kompoz layers
/// sit on top of it: an `Error<E>` coming up from an inner kompoz layer is
/// passed on as it is (no `Error<Error<E>>`), and a leaf's own error becomes
/// [`Error::Inner`].
///
/// Implemented for `Error<E>` (the flattening case), for [`Infallible`]
/// (axum handlers and routers), for [`BoxError`] (tower's and hyper-util's
/// clients) and for [`std::io::Error`]. For any other leaf error, put
/// [`InnerErrorLayer`] (`.inner_error()` on a `ServiceBuilder`) right above
/// the leaf, or implement this trait for your own error type in one line
/// with [`stack_error!`](crate::stack_error!).
///
/// # Examples
///
/// A leaf with a foreign error type ends the stack with `.inner_error()`;
/// the stack's error is then `Error<fmt::Error>`, with no annotation:
///
/// ```
/// use kompoz_core::call::Error;
/// use kompoz_tower::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let leaf = service_fn(|_: ()| async { Err::<(), _>(std::fmt::Error) });
/// let api = ServiceBuilder::new().limited(4)?.inner_error().service(leaf);
/// let err = futures::executor::block_on(api.oneshot(())).unwrap_err();
/// assert!(matches!(err, Error::Inner(std::fmt::Error)));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// Without it the stack does not compile, and the compiler says what to add:
///
/// ```compile_fail,E0277
/// use kompoz_tower::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// let leaf = service_fn(|_: ()| async { Err::<(), _>(std::fmt::Error) });
/// let api = ServiceBuilder::new().limited(4)?.service(leaf);
/// let _ = futures::executor::block_on(api.oneshot(()));
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// # Why an associated type, not `Into<Error<E>>`
///
/// With a bound `S::Error: Into<Error<E>>` an outer layer cannot tell `E`:
/// an `Error<X>` from the layer below converts both into `Error<X>` (as it
/// is) and into `Error<Error<X>>` (wrapped), so every stack would need a
/// type annotation. An associated type is a function of the inner error:
/// one answer, inferred through any depth of layers.
#[diagnostic::on_unimplemented(
    message = "kompoz layers cannot tell what kind of error `{Self}` is",
    label = "the error of the service under this kompoz layer",
    note = "put `kompoz_tower::InnerErrorLayer` (`.inner_error()` on a `ServiceBuilder`) right above the leaf service, \
            or `kompoz_tower::stack_error!({Self});` if the type is yours"
)]
pub trait StackError {
    /// The leaf's error type: what [`Error::Inner`] holds.
    type Inner;

    /// This error as the stack's flat error.
    fn into_error(self) -> Error<Self::Inner>;
}

impl<E> StackError for Error<E> {
    type Inner = E;

    #[inline]
    fn into_error(self) -> Error<E> {
        self
    }
}

/// Declares types as leaf errors: implements [`StackError`] for each, with
/// `Inner = Self`, so that kompoz layers wrap them in
/// [`Error::Inner`](kompoz_core::call::Error::Inner).
///
/// # Examples
///
/// ```
/// #[derive(Debug)]
/// struct UpstreamError;
///
/// kompoz_tower::stack_error!(UpstreamError);
///
/// use kompoz_tower::StackError;
/// assert!(matches!(UpstreamError.into_error(), kompoz_core::call::Error::Inner(UpstreamError)));
/// ```
#[macro_export]
macro_rules! stack_error {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl $crate::StackError for $ty {
                type Inner = $ty;

                #[inline]
                fn into_error(self) -> $crate::__private::Error<$ty> {
                    $crate::__private::Error::Inner(self)
                }
            }
        )+
    };
}

stack_error!(Infallible, BoxError, std::io::Error);

/// Wraps every error of the service below in [`Error::Inner`]: put it right
/// above a leaf service whose error type does not implement [`StackError`]
/// (`hyper::Error`, `reqwest::Error`, a foreign crate's error).
///
/// On a `ServiceBuilder`, `.inner_error()` (from
/// [`ServiceBuilderExt`](crate::ServiceBuilderExt)) adds it.
#[derive(Clone, Copy, Debug, Default)]
pub struct InnerErrorLayer;

impl InnerErrorLayer {
    /// The layer.
    pub fn new() -> Self {
        InnerErrorLayer
    }
}

impl<S> Layer<S> for InnerErrorLayer {
    type Service = InnerError<S>;

    fn layer(&self, inner: S) -> InnerError<S> {
        InnerError { inner }
    }
}

/// The service of [`InnerErrorLayer`]: its errors are the inner service's,
/// as [`Error::Inner`].
#[derive(Clone, Debug)]
pub struct InnerError<S> {
    inner: S,
}

impl<S> InnerError<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for InnerError<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = crate::future::MapInner<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: R) -> Self::Future {
        crate::future::MapInner::new(self.inner.call(request))
    }
}
