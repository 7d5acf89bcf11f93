//! One policy function, written once against [`ClockExt`], run on every
//! runtime of the matrix (tokio, async-std, smol, `futures-timer`) and under
//! [`ManualClock`](kompoz_core::ManualClock): the four-layer stack
//! limit ∘ breaker ∘ timeout ∘ retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kompoz_core::{Clock, ClockExt, Combinator, ConfigError, rule};

/// A service the test steers: up or down, fast or hanging.
#[derive(Default)]
struct Service {
    down: AtomicBool,
    hanging: AtomicBool,
    calls: AtomicUsize,
}

impl Service {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The application's policy, generic over the clock: at most 4 calls inside,
/// a breaker that opens after 2 failures, 20 ms per call (retries included),
/// 3 attempts 1 ms apart.
fn policy<K: Clock>(
    clock: &K,
    service: Arc<Service>,
) -> Result<impl Combinator<u32> + use<K>, ConfigError> {
    let sleeper = clock.clone();
    let call = rule(async move |_: &u32| {
        service.calls.fetch_add(1, Ordering::SeqCst);
        if service.hanging.load(Ordering::SeqCst) {
            sleeper.sleep(Duration::from_secs(60)).await;
        }
        !service.down.load(Ordering::SeqCst)
    });
    let retried = clock.retry(call, 3)?.fixed(Duration::from_millis(1));
    let timed = clock.with_timeout(retried, Duration::from_millis(20))?;
    let guarded = clock
        .circuit_breaker(timed)
        .failure_threshold(2)
        .recovery_timeout(Duration::from_secs(30))
        .build()?;
    clock.limited(guarded, 4)
}

async fn the_same_policy_retries_times_out_and_trips_on_every_clock<K: Clock>(clock: K) {
    let service = Arc::new(Service::default());
    let policy = policy(&clock, Arc::clone(&service)).unwrap();

    assert_eq!(policy.run(1).await, (true, 1));
    assert_eq!(service.calls(), 1);

    // Down: three attempts, one failure for the breaker.
    service.down.store(true, Ordering::SeqCst);
    assert_eq!(policy.run(2).await, (false, 2));
    assert_eq!(service.calls(), 4);

    // Hanging: the timeout drops the first attempt; the second failure
    // opens the circuit.
    service.hanging.store(true, Ordering::SeqCst);
    assert_eq!(policy.run(3).await, (false, 3));
    assert_eq!(service.calls(), 5);

    // Open: rejected without reaching the service.
    service.hanging.store(false, Ordering::SeqCst);
    service.down.store(false, Ordering::SeqCst);
    assert_eq!(policy.run(4).await, (false, 4));
    assert_eq!(service.calls(), 5);
}

kompoz_tests::cross_runtime!(the_same_policy_retries_times_out_and_trips_on_every_clock);

/// The runtime crate's free functions are the same constructors with the
/// runtime's clock plugged in: the reference's names build the same stack.
#[tokio::test(start_paused = true)]
async fn the_reference_names_build_the_same_stack_on_tokio() {
    use kompoz_tokio::{circuit_breaker, limited, retry, with_timeout};

    let calls = AtomicUsize::new(0);
    let call = rule(async |_: &u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        false
    });
    let stack = limited(
        circuit_breaker(with_timeout(retry(call, 3).unwrap(), Duration::from_secs(1)).unwrap())
            .failure_threshold(1)
            .build()
            .unwrap(),
        4,
    )
    .unwrap();
    assert_eq!(stack.run(1).await, (false, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(stack.run(2).await, (false, 2)); // open: not called
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        stack.get_ref().state(),
        kompoz_tokio::CircuitState::Open,
        "the breaker inside the limit opened"
    );
}
