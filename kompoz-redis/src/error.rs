//! [`SetupError`]: why a connection, a shared limiter or a shared breaker
//! could not be set up.

use std::fmt;

use kompoz_core::ConfigError;
use redis::{ErrorKind, RedisError};

/// Why a [`Redis`](crate::Redis) connection, a
/// [`SharedRateLimiter`](crate::SharedRateLimiter) or a
/// [`SharedBreaker`](crate::SharedBreaker) could not be set up.
///
/// Set-up is the one place these errors surface: once built, a limiter or
/// breaker never fails a call because of Redis, it turns to its fallback
/// (see [`Fallback`](crate::Fallback)).
///
/// # Examples
///
/// ```
/// use kompoz_redis::{Redis, SetupError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = Redis::connect("not a url").await.unwrap_err();
/// assert!(matches!(err, SetupError::Config(_)));
/// assert!(err.to_string().starts_with("invalid `url`"));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// A parameter out of range, or a key already in use with another
    /// configuration ([`ConfigError::NameConflict`] names the key, the
    /// first setting that differs, and both values).
    Config(ConfigError),
    /// Nothing answered at `address`.
    Unreachable {
        /// `host:port` that was tried.
        address: String,
        /// What went wrong (refused, timed out, ...).
        reason: String,
    },
    /// The server at `address` refused the password, or wants one.
    Auth {
        /// `host:port` of the server.
        address: String,
        /// The server's answer.
        reason: String,
    },
    /// The server at `address` answered with an error while `during`.
    Redis {
        /// `host:port` of the server.
        address: String,
        /// What was being done.
        during: &'static str,
        /// The error.
        source: RedisError,
    },
}

impl SetupError {
    pub(crate) fn from_connect(address: String, err: RedisError) -> SetupError {
        let code = err.code().unwrap_or_default();
        if err.kind() == ErrorKind::AuthenticationFailed || code == "NOAUTH" || code == "WRONGPASS"
        {
            SetupError::Auth {
                address,
                reason: err.to_string(),
            }
        } else if err.is_io_error() || err.is_connection_refusal() || err.is_timeout() {
            SetupError::Unreachable {
                address,
                reason: err.to_string(),
            }
        } else {
            SetupError::Redis {
                address,
                during: "connecting",
                source: err,
            }
        }
    }
}

impl From<ConfigError> for SetupError {
    fn from(err: ConfigError) -> Self {
        SetupError::Config(err)
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Config(err) => write!(f, "{err}"),
            SetupError::Unreachable { address, reason } => {
                write!(f, "Redis at {address} is unreachable: {reason}")
            }
            SetupError::Auth { address, reason } => {
                write!(f, "Redis at {address} refused authentication: {reason}")
            }
            SetupError::Redis {
                address,
                during,
                source,
            } => write!(f, "Redis at {address} failed while {during}: {source}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Config(err) => Some(err),
            SetupError::Redis { source, .. } => Some(source),
            _ => None,
        }
    }
}
