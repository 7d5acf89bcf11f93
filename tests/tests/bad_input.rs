//! Bad input, clear error: every configuration parameter of every
//! combinator, with each of its invalid values, is refused at construction
//! with a [`ConfigError`] that names the parameter (and, for out-of-range
//! values, the value). Prints how many parameters and values were covered
//! (`cargo test -p kompoz-tests --test bad_input -- --nocapture`).

use std::collections::BTreeSet;
use std::time::Duration;

use kompoz_core::{
    Backoff, ClockExt, ConfigError, ManualClock, RateLimit, Registry, Semaphore, SlidingWindow,
    parallel_and, parallel_or, rule,
};

type Check = Box<dyn Fn() -> Result<(), ConfigError>>;

/// One row: the parameter the error must name, the invalid value (as the
/// error must show it, if it shows one), and the construction that must fail.
struct Row {
    parameter: &'static str,
    value: String,
    check: Check,
}

fn row<T>(
    parameter: &'static str,
    value: impl std::fmt::Debug,
    f: impl Fn() -> Result<T, ConfigError> + 'static,
) -> Row {
    Row {
        parameter,
        value: format!("{value:?}"),
        check: Box::new(move || f().map(drop)),
    }
}

fn clock() -> ManualClock {
    ManualClock::new()
}

fn pass() -> kompoz_core::leaf::Rule<impl AsyncFn(&u32) -> bool> {
    rule(async |_: &u32| true)
}

const MS: Duration = Duration::from_millis(1);
const NAN: f64 = f64::NAN;

fn table() -> Vec<Row> {
    let mut rows = Vec::new();

    // --- timeout
    rows.push(row("timeout", Duration::ZERO, || {
        clock().with_timeout(pass(), Duration::ZERO)
    }));

    // --- semaphore, limiter, registry
    for n in [0, Semaphore::MAX_PERMITS + 1, usize::MAX] {
        rows.push(row("permits", n, move || Semaphore::new(n)));
        rows.push(row("max_concurrent", n, move || clock().limited(pass(), n)));
        rows.push(row("max_concurrent", n, move || {
            Registry::new().pool("p", n)
        }));
        rows.push(row("max_concurrent", n, move || {
            clock().limited_named_in(pass(), n, "p", &Registry::new())
        }));
    }
    rows.push(row("name", "", || Registry::new().pool("", 1)));
    rows.push(row("name", "", || {
        clock().limited_named_in(pass(), 1, "", &Registry::new())
    }));
    rows.push(row("max_concurrent", 3, || {
        let registry = Registry::new();
        let _first = registry.pool("api_pool", 2)?;
        registry.pool("api_pool", 3)
    }));

    // --- retry
    rows.push(row("max_attempts", 0u32, || clock().retry(pass(), 0)));
    for factor in [0.0, 0.5, -1.0, NAN, f64::INFINITY, f64::NEG_INFINITY] {
        rows.push(row("factor", factor, move || {
            Backoff::exponential(MS, factor, Duration::from_secs(1))
        }));
    }
    rows.push(row("max_delay", Duration::from_millis(5), || {
        Backoff::exponential(Duration::from_millis(10), 2.0, 5 * MS)
    }));

    // --- parallel
    rows.push(row("children", [(); 0], || {
        parallel_and((0..0).map(|_| pass()))
    }));
    rows.push(row("children", [(); 0], || {
        parallel_or((0..0).map(|_| pass()))
    }));

    // --- rate limit
    rows.push(row("rate", 0u32, || {
        RateLimit::new(0, Duration::from_secs(1))
    }));
    rows.push(row("rate", 0u32, || RateLimit::per_second(0)));
    rows.push(row("rate", 0u32, || RateLimit::per_minute(0)));
    rows.push(row("rate", 2u32, || {
        RateLimit::new(2, Duration::from_nanos(1))
    }));
    rows.push(row("rate", u32::MAX, || RateLimit::per_second(u32::MAX)));
    rows.push(row("period", Duration::ZERO, || {
        RateLimit::new(1, Duration::ZERO)
    }));
    rows.push(row("burst", 0u32, || {
        RateLimit::with_burst(1, Duration::from_secs(1), 0)
    }));
    // Beyond the clock's range (a saturated limit would admit every call).
    rows.push(row("period", Duration::MAX, || {
        RateLimit::new(1, Duration::MAX)
    }));
    rows.push(row(
        "period",
        Duration::from_secs(300 * 365 * 86_400),
        || RateLimit::new(1, Duration::from_secs(300 * 365 * 86_400)),
    ));
    rows.push(row("burst", 10u32, || {
        RateLimit::with_burst(1, Duration::from_secs(100 * 365 * 86_400), 10)
    }));
    rows.push(row("burst", u32::MAX, || {
        RateLimit::with_burst(1, Duration::from_secs(60), u32::MAX)
    }));
    rows.push(row("name", "", || {
        clock().rate_limited_named_in(pass(), RateLimit::per_second(1)?, "", &Registry::new())
    }));
    type Other = fn() -> Result<RateLimit, ConfigError>;
    let conflicts: [(&'static str, Other); 3] = [
        ("rate", || RateLimit::per_second(2)),
        ("period", || RateLimit::new(1, Duration::from_secs(2))),
        ("burst", || {
            RateLimit::with_burst(1, Duration::from_secs(1), 3)
        }),
    ];
    for (parameter, other) in conflicts {
        rows.push(row(parameter, "conflict", move || {
            let registry = Registry::new();
            let _first = clock().rate_limited_named_in(
                pass(),
                RateLimit::per_second(1)?,
                "api",
                &registry,
            )?;
            clock().rate_limited_named_in(pass(), other()?, "api", &registry)
        }));
    }
    rows.push(row("clock", "conflict", || {
        let registry = Registry::new();
        let limit = RateLimit::per_second(1)?;
        let _first = clock().rate_limited_named_in(pass(), limit, "api", &registry)?;
        kompoz_tokio::TokioClock::new().rate_limited_named_in(pass(), limit, "api", &registry)
    }));

    // --- circuit breaker (each also through the shared `Breaker` builder)
    type B = kompoz_core::BreakerBuilder<ManualClock>;
    let mut breaker = |parameter: &'static str, value: &dyn std::fmt::Debug, f: fn(B) -> B| {
        rows.push(Row {
            parameter,
            value: format!("{value:?}"),
            check: Box::new(move || f(clock().shared_breaker()).build().map(drop)),
        });
    };
    breaker("failure_threshold", &0u32, |b| b.failure_threshold(0));
    breaker("failure_threshold", &65_536u32, |b| {
        b.failure_threshold(65_536)
    });
    breaker("failure_threshold", &u32::MAX, |b| {
        b.failure_threshold(u32::MAX)
    });
    breaker("recovery_timeout", &Duration::ZERO, |b| {
        b.recovery_timeout(Duration::ZERO)
    });
    breaker("half_open_max_calls", &0u32, |b| b.half_open_max_calls(0));
    breaker("half_open_max_calls", &65_536u32, |b| {
        b.half_open_max_calls(65_536)
    });
    breaker("failure_rate", &0.0, |b| b.failure_rate(0.0));
    breaker("failure_rate", &-1.0, |b| b.failure_rate(-1.0));
    breaker("failure_rate", &100.5, |b| b.failure_rate(100.5));
    breaker("failure_rate", &NAN, |b| b.failure_rate(NAN));
    breaker("failure_rate", &f64::INFINITY, |b| {
        b.failure_rate(f64::INFINITY)
    });
    breaker("slow_call_threshold", &Duration::ZERO, |b| {
        b.slow_calls(Duration::ZERO, 50.0)
    });
    breaker("slow_call_rate", &0.0, |b| b.slow_calls(MS, 0.0));
    breaker("slow_call_rate", &101.0, |b| b.slow_calls(MS, 101.0));
    breaker("slow_call_rate", &NAN, |b| b.slow_calls(MS, NAN));
    breaker("sliding_window", &"without a rate policy", |b| {
        b.sliding_window(SlidingWindow::Count(10))
    });
    breaker("minimum_calls", &"without a rate policy", |b| {
        b.minimum_calls(5)
    });
    breaker("sliding_window", &SlidingWindow::Count(0), |b| {
        b.failure_rate(50.0).sliding_window(SlidingWindow::Count(0))
    });
    breaker("sliding_window", &SlidingWindow::Count(1_000_001), |b| {
        b.failure_rate(50.0)
            .sliding_window(SlidingWindow::Count(1_000_001))
    });
    breaker("sliding_window", &"Time { duration: 0ns, .. }", |b| {
        b.failure_rate(50.0).sliding_window(SlidingWindow::Time {
            duration: Duration::ZERO,
            buckets: 4,
        })
    });
    breaker("sliding_window", &"Time { buckets: 0, .. }", |b| {
        b.failure_rate(50.0).sliding_window(SlidingWindow::Time {
            duration: Duration::from_secs(1),
            buckets: 0,
        })
    });
    breaker("sliding_window", &"Time { buckets: 100001, .. }", |b| {
        b.failure_rate(50.0).sliding_window(SlidingWindow::Time {
            duration: Duration::from_secs(1),
            buckets: 100_001,
        })
    });
    breaker("sliding_window", &"Time { 5 ns in 10 buckets }", |b| {
        b.failure_rate(50.0).sliding_window(SlidingWindow::Time {
            duration: Duration::from_nanos(5),
            buckets: 10,
        })
    });
    breaker("minimum_calls", &0u32, |b| {
        b.failure_rate(50.0).minimum_calls(0)
    });
    breaker("minimum_calls", &11u32, |b| {
        b.failure_rate(50.0)
            .sliding_window(SlidingWindow::Count(10))
            .minimum_calls(11)
    });
    breaker("backoff_factor", &0.5, |b| {
        b.backoff(0.5, Duration::from_secs(600))
    });
    breaker("backoff_factor", &NAN, |b| {
        b.backoff(NAN, Duration::from_secs(600))
    });
    breaker("backoff_factor", &f64::INFINITY, |b| {
        b.backoff(f64::INFINITY, Duration::from_secs(600))
    });
    breaker("backoff_max", &Duration::from_secs(1), |b| {
        b.recovery_timeout(Duration::from_secs(30))
            .backoff(2.0, Duration::from_secs(1))
    });
    breaker("jitter_fraction", &-0.1, |b| b.jitter_fraction(-0.1));
    breaker("jitter_fraction", &1.5, |b| b.jitter_fraction(1.5));
    breaker("jitter_fraction", &NAN, |b| b.jitter_fraction(NAN));

    // The combinator's own builder forwards to the same validation.
    rows.push(row("failure_threshold", 0u32, || {
        clock().circuit_breaker(pass()).failure_threshold(0).build()
    }));
    rows.push(row("recovery_timeout", Duration::ZERO, || {
        clock()
            .circuit_breaker(pass())
            .recovery_timeout(Duration::ZERO)
            .build()
    }));
    rows.push(row("half_open_max_calls", 0u32, || {
        clock()
            .circuit_breaker(pass())
            .half_open_max_calls(0)
            .build()
    }));
    rows.push(row("failure_rate", NAN, || {
        clock().circuit_breaker(pass()).failure_rate(NAN).build()
    }));

    rows
}

#[test]
fn every_invalid_parameter_is_refused_by_name() {
    let rows = table();
    let mut parameters = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        parameters.insert(r.parameter);
        match (r.check)() {
            Ok(()) => failures.push(format!(
                "row {i}: `{}` = {} was accepted",
                r.parameter, r.value
            )),
            Err(e) => {
                let message = e.to_string();
                if e.parameter() != r.parameter || !message.contains(r.parameter) {
                    failures.push(format!(
                        "row {i}: `{}` = {}: the error names `{}`: {message}",
                        r.parameter,
                        r.value,
                        e.parameter()
                    ));
                }
                if let ConfigError::Invalid { value, .. } = &e {
                    if value.is_empty() || !message.contains(value.as_str()) {
                        failures.push(format!(
                            "row {i}: the error does not show the value: {message}"
                        ));
                    }
                }
            }
        }
    }
    println!(
        "bad input: {} parameters covered, {} invalid values tried: {}",
        parameters.len(),
        rows.len(),
        parameters.iter().copied().collect::<Vec<_>>().join(", ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
