//! Classification: [`Predicate`] over a call's value or error, and the
//! defaults [`Always`] and [`Never`].

/// A test over `&X`: which errors (or values) count as a breaker's
/// failures, which errors are retried. Every `Fn(&X) -> bool` is one.
pub trait Predicate<X: ?Sized> {
    /// Whether `value` is in.
    fn test(&self, value: &X) -> bool;
}

/// The predicate that holds for everything: the breaker layer's default
/// over errors (every `Err` is a failure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Always;

/// The predicate that holds for nothing: the breaker layer's default over
/// values (no `Ok` is a failure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Never;

impl<X: ?Sized> Predicate<X> for Always {
    #[inline]
    fn test(&self, _: &X) -> bool {
        true
    }
}

impl<X: ?Sized> Predicate<X> for Never {
    #[inline]
    fn test(&self, _: &X) -> bool {
        false
    }
}

impl<X: ?Sized, F: Fn(&X) -> bool> Predicate<X> for F {
    #[inline]
    fn test(&self, value: &X) -> bool {
        self(value)
    }
}
