//! PLACEHOLDER: filled by its issue.

#[doc(hidden)]
#[macro_export]
macro_rules! __timeout_api {
    ($clock:ty) => {};
}
