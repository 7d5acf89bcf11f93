//! PLACEHOLDER: filled by its issue.

#[doc(hidden)]
#[macro_export]
macro_rules! __retry_api {
    ($clock:ty) => {};
}
