//! PLACEHOLDER: filled by its issue.

#[doc(hidden)]
#[macro_export]
macro_rules! __rate_limit_api {
    ($clock:ty) => {};
}
