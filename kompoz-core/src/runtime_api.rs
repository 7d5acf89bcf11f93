//! The constructors a runtime crate gets with its clock plugged in.
//!
//! Each module that takes time defines a hidden `__<module>_api!` macro that
//! expands to free functions (`with_timeout`, `circuit_breaker`, …) calling the
//! clock-generic constructors of this crate with `<$clock>::default()`.
//! `kompoz-tokio`, `kompoz-async-std`, `kompoz-smol` and the `futures-timer`
//! module invoke [`__runtime_api!`] once, so the wrappers are written once.

/// Expands to every clock-plugged constructor for the clock type `$clock`
/// (which must implement [`Clock`](crate::Clock) and `Default`).
#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_api {
    ($clock:ty) => {
        $crate::__timeout_api!($clock);
        $crate::__limiter_api!($clock);
        $crate::__circuit_breaker_api!($clock);
        $crate::__retry_api!($clock);
        $crate::__rate_limit_api!($clock);
    };
}
