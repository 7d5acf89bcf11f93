//! PLACEHOLDER: filled by its issue.

#[doc(hidden)]
#[macro_export]
macro_rules! __circuit_breaker_api {
    ($clock:ty) => {};
}
