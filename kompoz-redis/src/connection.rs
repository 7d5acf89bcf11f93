//! The connection to Redis: [`Redis`], a cheap handle over one reconnecting
//! multiplexed connection, with a timeout on every command.

use std::fmt;
use std::time::Duration;

use kompoz_core::ConfigError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, RedisError, Script};

use crate::SetupError;

/// How long a Redis command may take, unless told otherwise: 50 ms.
///
/// A shared check on loopback takes tens of microseconds; a command that
/// takes 50 ms means a Redis in trouble, and the fallback serves better.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(50);
/// How long connecting may take, unless told otherwise: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A handle to one Redis server: a multiplexed connection that reconnects
/// by itself (the `redis` crate's `ConnectionManager`), and a timeout put on
/// every command sent through it. Clones share the connection.
///
/// Built by [`Redis::connect`] or [`Redis::builder`]; every shared limiter
/// and breaker takes one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kompoz_redis::Redis;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = kompoz_redis::test_server::RedisServer::start()?;
/// # let url = server.url(); // e.g. "redis://127.0.0.1:6379/"
/// let redis = Redis::builder(&url)
///     .command_timeout(Duration::from_millis(20))
///     .connect()
///     .await?;
/// assert_eq!(redis.command_timeout(), Duration::from_millis(20));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Redis {
    manager: ConnectionManager,
    address: String,
    command_timeout: Duration,
}

impl Redis {
    /// Connects to the server at `url` (`redis://[:password@]host:port[/db]`)
    /// with the default timeouts. See [`RedisBuilder::connect`].
    ///
    /// # Errors
    ///
    /// As [`RedisBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Redis, SetupError> {
        Redis::builder(url).connect().await
    }

    /// A builder for a connection to `url`, to set its timeouts.
    pub fn builder(url: &str) -> RedisBuilder {
        RedisBuilder {
            url: url.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The server's address (`host:port`, never the password).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The time limit put on every command.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Runs `script` on `key` with `args`, within the command timeout.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[String],
    ) -> Result<T, CommandError> {
        self.run_keys(script, &[key], args).await
    }

    /// Runs `script` on `keys` with `args`, within the command timeout.
    pub(crate) async fn run_keys<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, CommandError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(arg.as_str());
        }
        let mut connection = self.manager.clone();
        match tokio::time::timeout(
            self.command_timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(CommandError::Redis(err)),
            Err(_) => Err(CommandError::TimedOut(self.command_timeout)),
        }
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("address", &self.address)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Why one command to Redis failed (the call then goes to the fallback).
#[derive(Debug)]
pub(crate) enum CommandError {
    /// The server or the connection failed.
    Redis(RedisError),
    /// No answer within the command timeout.
    TimedOut(Duration),
    /// The key holds another configuration (someone reused the name since
    /// this handle was built).
    Conflict(ConfigError),
    /// The script answered something it never sends (another program
    /// writes to the key).
    Reply(String),
}

impl CommandError {
    /// The error for a command that set-up depends on.
    pub(crate) fn into_setup(self, address: &str, during: &'static str) -> SetupError {
        match self {
            CommandError::Redis(err) => match SetupError::from_connect(address.to_owned(), err) {
                SetupError::Redis {
                    address, source, ..
                } => SetupError::Redis {
                    address,
                    during,
                    source,
                },
                other => other,
            },
            CommandError::TimedOut(after) => SetupError::Unreachable {
                address: address.to_owned(),
                reason: format!("no answer within {after:?} while {during}"),
            },
            CommandError::Conflict(err) => SetupError::Config(err),
            CommandError::Reply(reply) => SetupError::Redis {
                address: address.to_owned(),
                during,
                source: RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected answer from kompoz's script",
                    reply,
                )),
            },
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Redis(err) => write!(f, "{err}"),
            CommandError::TimedOut(after) => write!(f, "no answer within {after:?}"),
            CommandError::Conflict(err) => write!(f, "{err}"),
            CommandError::Reply(reply) => write!(f, "unexpected answer {reply}"),
        }
    }
}

/// Sets up a [`Redis`] connection: timeouts, then [`connect`](Self::connect).
#[derive(Debug, Clone)]
#[must_use = "a builder connects nothing until `.connect().await?`"]
pub struct RedisBuilder {
    url: String,
    command_timeout: Duration,
    connect_timeout: Duration,
}

impl RedisBuilder {
    /// The time limit on every command (a check, a sync, a report); a
    /// command over it fails and the call goes to the fallback. Default
    /// [`DEFAULT_COMMAND_TIMEOUT`]; must be greater than zero.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The time limit on connecting, the first time and on every
    /// reconnection attempt. Default [`DEFAULT_CONNECT_TIMEOUT`]; must be
    /// greater than zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects and checks that the server answers (a `PING`, which also
    /// proves the password), within the connect timeout.
    ///
    /// After this, a lost connection is re-established in the background;
    /// commands fail (and calls use the fallback) until it is.
    ///
    /// # Errors
    ///
    /// - [`SetupError::Config`] for a malformed URL or a zero timeout.
    /// - [`SetupError::Unreachable`] when nothing answers at the address
    ///   (within the connect timeout).
    /// - [`SetupError::Auth`] when the server refuses the password, or asks
    ///   for one that was not given.
    /// - [`SetupError::Redis`] for any other refusal.
    pub async fn connect(self) -> Result<Redis, SetupError> {
        if self.command_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "command_timeout",
                self.command_timeout,
                "a duration greater than zero",
            )
            .into());
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "connect_timeout",
                self.connect_timeout,
                "a duration greater than zero",
            )
            .into());
        }
        let client = redis::Client::open(self.url.as_str()).map_err(|_| {
            ConfigError::invalid(
                "url",
                redacted(&self.url),
                "a Redis URL such as redis://[:password@]host:port[/db]",
            )
        })?;
        let address = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            // One attempt per connection, retried by the next command: the
            // manager's own retries would hold a command past its timeout.
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_secs(1));
        let connecting = async {
            let mut manager = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut manager)
                .await?;
            Ok::<_, RedisError>(manager)
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(manager)) => Ok(Redis {
                manager,
                address,
                command_timeout: self.command_timeout,
            }),
            Ok(Err(err)) => Err(SetupError::from_connect(address, err)),
            Err(_) => Err(SetupError::Unreachable {
                address,
                reason: format!("no answer within {:?}", self.connect_timeout),
            }),
        }
    }
}

/// The URL with any password replaced, for error messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
    }
}
