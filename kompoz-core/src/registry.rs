//! Named shared state: the [`Registry`] of named pools and named rate
//! limits.
//!
//! Each kind of entry lives in its own [`NameMap`]; adding a kind is one
//! more field on [`Registry`] and a lookup method that states what makes
//! two requests for the same name compatible.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;

use crate::rate_limit::Gcra;
use crate::sync::Mutex;
use crate::{ConfigError, Semaphore};

/// Names shared state of one kind. Entries are held weakly: a name lives
/// while something built from it does, and can be registered afresh (with
/// any setting) once everything using it has been dropped.
pub(crate) struct NameMap<V> {
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    map: BTreeMap<String, Weak<V>>,
    /// Dead entries are swept when the map reaches this size, which then
    /// doubles the live count: amortised O(log n) per new name.
    sweep_at: usize,
}

impl<V> NameMap<V> {
    pub(crate) fn new() -> Self {
        NameMap {
            inner: Mutex::new(Entries {
                map: BTreeMap::new(),
                sweep_at: 16,
            }),
        }
    }

    /// The entry named `name`: the live one if there is one, after `check`
    /// accepted it, otherwise a fresh one from `create`.
    ///
    /// `check` and `create` run under the map's lock, so two racing requests
    /// for a new name get one entry.
    pub(crate) fn get_or_create(
        &self,
        name: &str,
        check: impl FnOnce(&V) -> Result<(), ConfigError>,
        create: impl FnOnce() -> V,
    ) -> Result<Arc<V>, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::invalid("name", name, "a non-empty name"));
        }
        let mut entries = self.inner.lock();
        if let Some(live) = entries.map.get(name).and_then(Weak::upgrade) {
            check(&live)?;
            return Ok(live);
        }
        // A new name (or a dead one). Sweep dead entries now and then, so a
        // process creating many short-lived names does not grow the map.
        if entries.map.len() >= entries.sweep_at {
            entries.map.retain(|_, entry| entry.strong_count() > 0);
            entries.sweep_at = (entries.map.len() * 2).max(16);
        }
        let fresh = Arc::new(create());
        entries.map.insert(name.into(), Arc::downgrade(&fresh));
        Ok(fresh)
    }

    /// The live entry named `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<V>> {
        self.inner.lock().map.get(name).and_then(Weak::upgrade)
    }

    /// The names with a live entry, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.inner
            .lock()
            .map
            .iter()
            .filter(|(_, entry)| entry.strong_count() > 0)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Named shared pools: limiters built with the same name in one registry
/// share one [`Semaphore`] (kompoz's `limited(..., name="api_pool")`).
///
/// The process-wide registry is [`Registry::global`] (with `std`); the
/// runtime crates' `limited_named` uses it. A registry of your own (this
/// works without `std`) keeps pools apart, e.g. per test or per tenant.
///
/// A name keeps its capacity while any limiter built from it is alive:
/// asking for it with a different capacity is an error. Once every limiter
/// using a name has been dropped, the name is free again.
///
/// Named rate limits ([`RateLimited::named`](crate::RateLimited::named),
/// [`RateLimiter::named`](crate::RateLimiter::named)) live here too, under names of their own: a pool and a rate limit may share a
/// name without meeting.
///
/// Names are looked up when a limiter is built, never on a call.
///
/// # Examples
///
/// ```
/// use kompoz_core::{ConfigError, Registry};
///
/// let registry = Registry::new();
/// let a = registry.pool("api_pool", 10)?;
/// let b = registry.pool("api_pool", 10)?;
/// assert!(std::sync::Arc::ptr_eq(&a, &b)); // one shared 10-slot pool
///
/// let err = registry.pool("api_pool", 5).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "name \"api_pool\" is already registered with `max_concurrent` = 10, but 5 was requested"
/// );
/// # Ok::<(), ConfigError>(())
/// ```
pub struct Registry {
    pools: NameMap<Semaphore>,
    rate_limits: NameMap<Gcra>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            pools: NameMap::new(),
            rate_limits: NameMap::new(),
        }
    }

    /// The process-wide registry, used by the runtime crates' `limited_named`.
    #[cfg(feature = "std")]
    pub fn global() -> &'static Registry {
        static GLOBAL: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// The pool named `name`, with `max_concurrent` permits: the existing one
    /// if the name is in use, otherwise a new one.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::Invalid`] for an empty `name` or a `max_concurrent`
    ///   of zero.
    /// - [`ConfigError::NameConflict`] if `name` is in use with a different
    ///   capacity; the error names the pool and both capacities.
    pub fn pool(&self, name: &str, max_concurrent: usize) -> Result<Arc<Semaphore>, ConfigError> {
        crate::limiter::check_capacity("max_concurrent", max_concurrent)?;
        self.pools.get_or_create(
            name,
            |pool| {
                if pool.capacity() == max_concurrent {
                    Ok(())
                } else {
                    Err(ConfigError::name_conflict(
                        name,
                        "max_concurrent",
                        pool.capacity(),
                        max_concurrent,
                    ))
                }
            },
            || Semaphore::with_valid_capacity(max_concurrent),
        )
    }

    /// The pool named `name`, if one is in use.
    pub fn existing_pool(&self, name: &str) -> Option<Arc<Semaphore>> {
        self.pools.get(name)
    }

    /// The names of the pools in use, in order.
    pub fn pool_names(&self) -> Vec<String> {
        self.pools.names()
    }

    /// The names of the rate limits in use, in order.
    pub fn rate_limit_names(&self) -> Vec<String> {
        self.rate_limits.names()
    }

    /// The named rate limits; [`RateLimited::named`]
    /// states what makes two requests for a name compatible.
    pub(crate) fn rate_limits(&self) -> &NameMap<Gcra> {
        &self.rate_limits
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("pools", &self.pool_names())
            .field("rate_limits", &self.rate_limit_names())
            .finish()
    }
}
