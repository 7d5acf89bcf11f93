//! Names and events (`kompoz_core::observe`) as the `tracing` and `metrics`
//! features report them: a scripted run on `ManualClock` under a captured
//! subscriber and the metrics crate's debugging recorder.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join;
use kompoz_core::call::Error;
use kompoz_core::circuit_breaker::{BreakerEvent, CircuitState};
use kompoz_core::observe::{self, Event};
use kompoz_core::{Clock, ClockExt, ManualClock, RateLimit, Registry};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One captured `tracing` event: target, level, message and `name` field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Captured {
    target: String,
    level: tracing::Level,
    message: String,
    name: String,
}

#[derive(Default)]
struct Fields {
    message: String,
    name: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.name = value.to_owned();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "name" => self.name = format!("{value:?}"),
            _ => {}
        }
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            message: fields.message,
            name: fields.name,
        });
    }
}

fn never_ready(clock: &ManualClock) -> impl Future<Output = Result<(), &'static str>> + use<> {
    let sleep = clock.sleep(Duration::from_secs(3600));
    async move {
        sleep.await;
        Ok(())
    }
}

type Script = (
    Vec<Captured>,
    BTreeMap<String, DebugValue>,
    Vec<(String, Event)>,
);

/// The script: a timeout retried twice, a pool refusing and then making a
/// call wait, a rate limit refusing, a breaker tripping and rejecting.
fn run_script() -> Script {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let heard = Arc::new(Mutex::new(Vec::new()));

    tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            let clock = ManualClock::new();
            let registry = Registry::new();
            let log = Arc::clone(&heard);
            let hear =
                move |name: &str, e: &Event| log.lock().unwrap().push((name.to_owned(), e.clone()));

            // Timeout inside a retry: 3 attempts time out, 2 retries.
            let policy = clock
                .policy()
                .retry(3)
                .unwrap()
                .fixed(Duration::from_millis(10))
                .name("payments")
                .on_event(hear.clone())
                .timeout(Duration::from_millis(50))
                .unwrap()
                .name("payments");
            let out = clock.block_on(policy.call(|| never_ready(&clock)));
            assert!(matches!(out, Err(Error::TimedOut(_))));

            // A named pool of one: refused after waiting 100 ms, then a call
            // that waits 30 ms for the permit.
            let policy = clock
                .policy()
                .limit_named_in(1, "db", &registry)
                .unwrap()
                .wait_at_most(Duration::from_millis(100))
                .on_event(hear.clone());
            let pool = registry.existing_pool("db").unwrap();
            let held = pool.try_acquire().unwrap();
            let out = clock.block_on(policy.call(|| async { Ok::<_, ()>(()) }));
            assert!(matches!(out, Err(Error::PoolFull(_))));
            let release = {
                let sleep = clock.sleep(Duration::from_millis(30));
                async move {
                    sleep.await;
                    drop(held);
                }
            };
            let (out, ()) =
                clock.block_on(join(policy.call(|| async { Ok::<_, ()>(()) }), release));
            assert!(out.is_ok());

            // A named rate limit of one call a second, rejecting when over.
            let limiter = clock
                .rate_limiter_named_in(RateLimit::per_second(1).unwrap(), "search", &registry)
                .unwrap();
            let policy = clock
                .policy()
                .rate_limit(&limiter)
                .reject_when_full()
                .on_event(hear.clone());
            assert!(
                clock
                    .block_on(policy.call(|| async { Ok::<_, ()>(()) }))
                    .is_ok()
            );
            let out = clock.block_on(policy.call(|| async { Ok::<_, ()>(()) }));
            assert!(matches!(out, Err(Error::RateLimited(_))));

            // A breaker reported under a name: one failure trips it, the next
            // call is rejected.
            let breaker = clock
                .shared_breaker()
                .failure_threshold(1)
                .on_event(observe::breaker_reporter("ledger", hear))
                .build()
                .unwrap();
            let policy = clock.policy().breaker(&breaker);
            let out = clock.block_on(policy.call(|| async { Err::<(), _>("down") }));
            assert!(matches!(out, Err(Error::Inner("down"))));
            let out = clock.block_on(policy.call(|| async { Ok::<_, &str>(()) }));
            assert!(matches!(out, Err(Error::CircuitOpen(_))));
        })
    });

    let metrics = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect();
    let captured = capture.0.lock().unwrap().clone();
    let heard = heard.lock().unwrap().clone();
    (captured, metrics, heard)
}

#[test]
fn subscribers_hear_every_layer_by_name() {
    let (_, _, heard) = run_script();
    let ms = Duration::from_millis;
    let expected = vec![
        (
            "payments",
            Event::Retry {
                attempt: 1,
                delay: ms(10),
                error: "timed_out",
            },
        ),
        (
            "payments",
            Event::Retry {
                attempt: 2,
                delay: ms(10),
                error: "timed_out",
            },
        ),
        ("db", Event::PoolRefused { waited: ms(100) }),
        ("db", Event::PoolWaited { waited: ms(30) }),
    ];
    assert_eq!(
        heard[..4]
            .iter()
            .map(|(n, e)| (n.as_str(), e.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(heard[4].0, "search");
    assert!(
        matches!(heard[4].1, Event::RateRefused { .. }),
        "{:?}",
        heard[4]
    );
    let breaker: Vec<_> = heard[5..]
        .iter()
        .map(|(n, e)| (n.as_str(), e.clone()))
        .collect();
    assert_eq!(
        breaker,
        vec![
            (
                "ledger",
                Event::Breaker(BreakerEvent::Failure {
                    elapsed: Duration::ZERO
                })
            ),
            (
                "ledger",
                Event::Breaker(BreakerEvent::StateChange {
                    from: CircuitState::Closed,
                    to: CircuitState::Open
                })
            ),
            (
                "ledger",
                Event::Breaker(BreakerEvent::Rejected {
                    state: CircuitState::Open
                })
            ),
        ]
    );
}

#[test]
fn tracing_events_have_static_targets_levels_and_names() {
    let (captured, _, _) = run_script();
    let seen: Vec<(&str, tracing::Level, &str, &str)> = captured
        .iter()
        .map(|c| {
            (
                c.target.as_str(),
                c.level,
                c.message.as_str(),
                c.name.as_str(),
            )
        })
        .collect();
    use tracing::Level as L;
    assert_eq!(
        seen,
        vec![
            ("kompoz::timeout", L::DEBUG, "timed out", "payments"),
            (
                "kompoz::retry",
                L::DEBUG,
                "attempt failed, retrying",
                "payments"
            ),
            ("kompoz::timeout", L::DEBUG, "timed out", "payments"),
            (
                "kompoz::retry",
                L::DEBUG,
                "attempt failed, retrying",
                "payments"
            ),
            ("kompoz::timeout", L::DEBUG, "timed out", "payments"),
            ("kompoz::limit", L::DEBUG, "pool full, call refused", "db"),
            ("kompoz::limit", L::TRACE, "waited for a permit", "db"),
            (
                "kompoz::rate_limit",
                L::DEBUG,
                "over the rate, call refused",
                "search"
            ),
            ("kompoz::breaker", L::TRACE, "failure", "ledger"),
            (
                "kompoz::breaker",
                L::INFO,
                "circuit state changed",
                "ledger"
            ),
            ("kompoz::breaker", L::DEBUG, "call rejected", "ledger"),
        ]
    );
}

#[test]
fn metrics_carry_layer_name_and_outcome_labels() {
    let (_, metrics, _) = run_script();
    let counter = |key: &str| match metrics.get(key) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!(
            "{key}: {other:?} in {:#?}",
            metrics.keys().collect::<Vec<_>>()
        ),
    };
    assert_eq!(
        counter("kompoz_calls_total{layer=timeout,name=payments,outcome=timed_out}"),
        3
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=retry,name=payments,outcome=retried}"),
        2
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=limit,name=db,outcome=refused}"),
        1
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=limit,name=db,outcome=waited}"),
        1
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=rate_limit,name=search,outcome=refused}"),
        1
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=breaker,name=ledger,outcome=failure}"),
        1
    );
    assert_eq!(
        counter("kompoz_calls_total{layer=breaker,name=ledger,outcome=rejected}"),
        1
    );
    assert_eq!(
        counter("kompoz_breaker_transitions_total{name=ledger,to=open}"),
        1
    );
    match metrics.get("kompoz_breaker_state{name=ledger}") {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 2.0),
        other => panic!("{other:?}"),
    }
    match metrics.get("kompoz_wait_seconds{layer=limit,name=db}") {
        Some(DebugValue::Histogram(v)) => {
            assert_eq!(v.iter().map(|x| x.into_inner()).collect::<Vec<_>>(), [0.03])
        }
        other => panic!("{other:?}"),
    }
    match metrics.get("kompoz_retry_delay_seconds{name=payments}") {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 2),
        other => panic!("{other:?}"),
    }
    // Nothing else: no series for outcomes that did not happen.
    assert_eq!(
        metrics.len(),
        12,
        "{:#?}",
        metrics.keys().collect::<Vec<_>>()
    );
}

#[test]
fn the_algebras_timeout_and_retry_report_by_name() {
    let clock = ManualClock::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let hear = move |name: &str, e: &Event| log.lock().unwrap().push((name.to_owned(), e.clone()));
    let slow = {
        let clock = clock.clone();
        kompoz_core::rule(move |_: &u32| {
            let sleep = clock.sleep(Duration::from_secs(1));
            async move {
                sleep.await;
                true
            }
        })
    };
    let timed = clock
        .with_timeout(slow, Duration::from_millis(100))
        .unwrap()
        .name("lookup")
        .on_event(hear.clone());
    let retried = clock
        .retry(timed, 2)
        .unwrap()
        .fixed(Duration::from_millis(5))
        .name("lookup")
        .on_event(hear);
    let (ok, _) = clock.block_on(kompoz_core::Combinator::run(&retried, 7));
    assert!(!ok);
    let ms = Duration::from_millis;
    assert_eq!(
        *heard.lock().unwrap(),
        vec![
            ("lookup".to_owned(), Event::TimedOut { after: ms(100) }),
            (
                "lookup".to_owned(),
                Event::Retry {
                    attempt: 1,
                    delay: ms(5),
                    error: "failed"
                }
            ),
            ("lookup".to_owned(), Event::TimedOut { after: ms(100) }),
        ]
    );
}

#[test]
fn a_named_breaker_reports_by_itself_and_a_stale_result_is_counted_and_reported() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let stats = tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            let clock = ManualClock::new();
            let log = Arc::clone(&heard);
            let breaker = clock
                .shared_breaker()
                .name("ledger")
                .on_event(move |e: &BreakerEvent| log.lock().unwrap().push(e.clone()))
                .build()
                .unwrap();
            let policy = clock.policy().breaker(&breaker);
            // A slow call admitted before a reset ends after it: ignored.
            let slow = policy.call(|| {
                let sleep = clock.sleep(Duration::from_secs(1));
                async move {
                    sleep.await;
                    Err::<(), _>("late")
                }
            });
            let reset = {
                let sleep = clock.sleep(Duration::from_millis(10));
                let breaker = breaker.clone();
                async move {
                    sleep.await;
                    breaker.reset();
                }
            };
            let (out, ()) = clock.block_on(join(slow, reset));
            assert!(matches!(out, Err(Error::Inner("late"))));
            breaker.stats()
        })
    });
    assert_eq!((stats.stale_count, stats.failure_count), (1, 0));
    assert_eq!(
        stats.to_string(),
        "closed: 0 succeeded, 0 failed (0 in a row), 0 rejected, 0 slow, 1 stale"
    );
    assert_eq!(*heard.lock().unwrap(), vec![BreakerEvent::Stale]);
    let captured = capture.0.lock().unwrap().clone();
    assert_eq!(captured.len(), 1, "{captured:?}");
    assert_eq!(
        (
            captured[0].target.as_str(),
            captured[0].level,
            captured[0].message.as_str(),
            captured[0].name.as_str()
        ),
        (
            "kompoz::breaker",
            tracing::Level::DEBUG,
            "stale result ignored",
            "ledger"
        )
    );
    let series: Vec<_> = snapshotter.snapshot().into_vec();
    assert_eq!(series.len(), 1);
    let (key, _, _, value) = &series[0];
    assert_eq!(key.key().name(), "kompoz_calls_total");
    assert!(
        key.key()
            .labels()
            .any(|l| l.key() == "outcome" && l.value() == "stale")
    );
    assert!(matches!(value, DebugValue::Counter(1)));
}

#[test]
fn the_algebras_pool_and_rate_limit_report_refusals_and_waits_by_name() {
    let clock = ManualClock::new();
    let registry = Registry::new();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let hear = move |name: &str, e: &Event| log.lock().unwrap().push((name.to_owned(), e.clone()));
    let pass = || kompoz_core::rule(async |_: &u32| true);
    let pooled = clock
        .limited_named_in(pass(), 1, "db", &registry)
        .unwrap()
        .wait_at_most(Duration::from_millis(20))
        .on_event(hear.clone());
    let pool = registry.existing_pool("db").unwrap();
    let held = pool.try_acquire().unwrap();
    assert!(!clock.block_on(kompoz_core::Combinator::run(&pooled, 1)).0);
    let release = {
        let sleep = clock.sleep(Duration::from_millis(5));
        async move {
            sleep.await;
            drop(held);
        }
    };
    let ((ok, _), ()) = clock.block_on(join(kompoz_core::Combinator::run(&pooled, 2), release));
    assert!(ok);
    let rated = clock
        .rate_limited(pass(), RateLimit::per_second(1).unwrap())
        .reject_when_full()
        .report_as("search")
        .on_event(hear);
    assert!(clock.block_on(kompoz_core::Combinator::run(&rated, 3)).0);
    assert!(!clock.block_on(kompoz_core::Combinator::run(&rated, 4)).0);
    let heard = heard.lock().unwrap().clone();
    let ms = Duration::from_millis;
    assert_eq!(
        heard[0],
        ("db".to_owned(), Event::PoolRefused { waited: ms(20) })
    );
    assert_eq!(
        heard[1],
        ("db".to_owned(), Event::PoolWaited { waited: ms(5) })
    );
    assert_eq!(heard[2].0, "search");
    assert!(matches!(heard[2].1, Event::RateRefused { .. }));
    assert_eq!(heard.len(), 3);
}

/// A recorder that only counts how many counters were registered.
struct CountingRegistrations(Arc<std::sync::atomic::AtomicUsize>);

impl metrics::Recorder for CountingRegistrations {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::Counter::noop()
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// A policy cloned per task (the usual way to spawn calls) registers each
/// series once: clones share their layer's handles, so a report after the
/// first allocates nothing, whichever clone makes it.
#[test]
fn clones_of_a_policy_share_their_metric_handles() {
    let registrations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let recorder = CountingRegistrations(Arc::clone(&registrations));
    let clock = ManualClock::new();
    let policy = clock
        .policy()
        .timeout(Duration::from_millis(1))
        .unwrap()
        .name("api");
    metrics::with_local_recorder(&recorder, || {
        for _ in 0..10 {
            let clone = policy.clone();
            let _ = clock.block_on(clone.call(|| never_ready(&clock)));
        }
    });
    assert_eq!(
        registrations.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "ten timed-out calls through ten clones register kompoz_calls_total once"
    );
}
