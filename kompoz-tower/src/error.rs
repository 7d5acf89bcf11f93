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
/// # In axum: the error you see, and what to do
///
/// Under axum's `HandleErrorLayer` and `Router::route_service`, the hint
/// above does not show: the unmet bound is reported on axum's side, and
/// `StackError` is never named. Forgetting `stack_error!` / `.inner_error()`
/// there reads:
///
/// ```text
/// error[E0277]: the trait bound `HandleError<Limit<ServiceFn<{closure@...}>>, ..., _>: Service<...>` is not satisfied
///    |     Router::new().route_service("/", stack);
///    |                   -------------      ^^^^^ the trait `Service<axum::http::Request<Body>>` is not implemented for `HandleError<Limit<..>, .., _>`
///    = help: the following other types implement trait `Service<Request>`:
///              HandleError<S, F, ()>
///              HandleError<S, F, (T1, T2)>
///              ...
/// note: required by a bound in `Router::<S>::route_service`
/// ```
///
/// When that error names a kompoz service (`Limit`, `Timeout`,
/// `CircuitBreaker`, `RateLimit`, `Retry`) inside `HandleError`, check, in
/// this order:
///
/// 1. the leaf's error type: add `stack_error!(YourError)` (in the crate
///    that defines it) or `.inner_error()` above the leaf;
/// 2. the handler's last argument: it must be the stack's `Error<E>`
///    (`|err: Error<YourError>|`), not axum's usual `BoxError`;
/// 3. under [`RetryLayer`](crate::RetryLayer) the request must be `Clone`
///    (or the policy must clone it);
/// 4. a classifier closure's argument type: `&Result<Response, Error<E>>`
///    with the same `E` as the stack.
///
/// To get the compiler to say which, pass the kompoz part of the stack
/// through [`check_stack`] before wrapping it in `HandleErrorLayer`: the
/// error is then reported on the kompoz stack instead of on `HandleError`,
/// and for case 1 it names the leaf error type with the hint above.
///
/// ```compile_fail,E0277
/// use axum::{error_handling::HandleErrorLayer, extract::Request, http::StatusCode, Router};
/// use kompoz_core::call::Error;
/// use kompoz_tower::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder};
///
/// #[derive(Debug)]
/// struct UpstreamError; // no `kompoz_tower::stack_error!(UpstreamError);`
///
/// let upstream = service_fn(|_: Request| async { Err::<&'static str, _>(UpstreamError) });
/// let stack = ServiceBuilder::new()
///     .layer(HandleErrorLayer::new(|_: Error<UpstreamError>| async { StatusCode::SERVICE_UNAVAILABLE }))
///     .limited(8)?
///     .service(upstream);
/// let _app: Router = Router::new().route_service("/", stack);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
///
/// # `stack_error!` and the orphan rule
///
/// `stack_error!(T)` implements a trait of this crate for `T`, so Rust's
/// orphan rule allows it only in the crate that defines `T`. In a workspace
/// where the error type lives in another crate (`my-upstream` defines
/// `UpstreamError`, `my-server` builds the stack), invoke
/// `kompoz_tower::stack_error!(UpstreamError);` in `my-upstream` (which then
/// depends on `kompoz-tower`), or leave that crate alone and end the stack
/// with `.inner_error()` (an [`InnerErrorLayer`]) in `my-server`: the
/// stack's error is `Error<UpstreamError>` either way. Invoked in
/// `my-server`, the macro fails with `error[E0117]: only traits defined in
/// the current crate can be implemented for types defined outside of the
/// crate`.
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
/// Invoke it in the crate that defines the type (the orphan rule; see
/// [`StackError`]); for a type of another crate, even one of your own
/// workspace, use [`.inner_error()`](crate::ServiceBuilderExt::inner_error)
/// instead.
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

/// Returns `service` as it is, after checking at compile time that it is a
/// kompoz stack for requests `R`: its error is a [`StackError`].
///
/// It does nothing at run time. Use it on the kompoz part of a stack before
/// handing it to code whose bounds hide the cause of a compile error (axum's
/// `HandleErrorLayer` and `route_service`): a leaf error kompoz does not
/// know is then reported here, naming the type and what to add.
///
/// # Examples
///
/// ```
/// use axum::{error_handling::HandleErrorLayer, extract::Request, http::StatusCode, Router};
/// use kompoz_core::call::Error;
/// use kompoz_tower::ServiceBuilderExt;
/// use tower::{service_fn, ServiceBuilder};
///
/// #[derive(Debug)]
/// struct UpstreamError;
/// kompoz_tower::stack_error!(UpstreamError); // without it: "kompoz layers cannot tell ..."
///
/// let upstream = service_fn(|_: Request| async { Err::<&'static str, _>(UpstreamError) });
/// let kompoz = ServiceBuilder::new().limited(8)?.service(upstream);
/// let stack = ServiceBuilder::new()
///     .layer(HandleErrorLayer::new(|_: Error<UpstreamError>| async { StatusCode::SERVICE_UNAVAILABLE }))
///     .service(kompoz_tower::check_stack::<Request, _>(kompoz));
/// let _app: Router = Router::new().route_service("/", stack);
/// # Ok::<(), kompoz_core::ConfigError>(())
/// ```
#[inline]
pub fn check_stack<R, S>(service: S) -> S
where
    S: Service<R>,
    S::Error: StackError,
{
    service
}

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
