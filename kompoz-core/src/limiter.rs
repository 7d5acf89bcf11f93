//! PLACEHOLDER: filled by its issue.

#[doc(hidden)]
#[macro_export]
macro_rules! __limiter_api {
    ($clock:ty) => {};
}
