//! The configuration error every constructor returns.

use alloc::string::String;
use core::fmt;

/// Invalid configuration, refused when a combinator is built.
///
/// Every variant names what was wrong and with which value, so the message
/// can be shown to whoever wrote the configuration.
///
/// # Examples
///
/// ```
/// use kompoz_core::ConfigError;
///
/// let err = ConfigError::invalid("max_concurrent", 0, "at least 1");
/// assert_eq!(err.to_string(), "invalid `max_concurrent`: 0 (expected at least 1)");
/// assert_eq!(err.parameter(), "max_concurrent");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A parameter's value is out of its valid range.
    Invalid {
        /// The parameter, as named in the constructor or builder method.
        parameter: &'static str,
        /// The value given, formatted with `Debug`.
        value: String,
        /// What would have been valid.
        expected: &'static str,
    },
    /// A shared name (a pool or a limit) was asked for again with a different
    /// setting than the one it already has.
    NameConflict {
        /// The shared name.
        name: String,
        /// The setting that differs.
        parameter: &'static str,
        /// The value the name was registered with.
        existing: String,
        /// The value asked for now.
        requested: String,
    },
}

impl ConfigError {
    /// An out-of-range `value` for `parameter`; `expected` says what is valid.
    pub fn invalid(
        parameter: &'static str,
        value: impl fmt::Debug,
        expected: &'static str,
    ) -> Self {
        ConfigError::Invalid {
            parameter,
            value: alloc::format!("{value:?}"),
            expected,
        }
    }

    /// `name` is registered with `parameter = existing`, and `requested` differs.
    pub fn name_conflict(
        name: &str,
        parameter: &'static str,
        existing: impl fmt::Debug,
        requested: impl fmt::Debug,
    ) -> Self {
        ConfigError::NameConflict {
            name: name.into(),
            parameter,
            existing: alloc::format!("{existing:?}"),
            requested: alloc::format!("{requested:?}"),
        }
    }

    /// The parameter this error is about.
    pub fn parameter(&self) -> &'static str {
        match self {
            ConfigError::Invalid { parameter, .. }
            | ConfigError::NameConflict { parameter, .. } => parameter,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid {
                parameter,
                value,
                expected,
            } => write!(f, "invalid `{parameter}`: {value} (expected {expected})"),
            ConfigError::NameConflict {
                name,
                parameter,
                existing,
                requested,
            } => write!(
                f,
                "name {name:?} is already registered with `{parameter}` = {existing}, \
                 but {requested} was requested"
            ),
        }
    }
}

impl core::error::Error for ConfigError {}
