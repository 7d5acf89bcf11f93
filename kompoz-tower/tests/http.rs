//! kompoz-tower in a real axum server, over loopback: a hyper client calls
//! a front server whose route forwards to a flaky upstream (another real
//! axum server that fails or hangs on command), through kompoz layers and
//! axum's `HandleErrorLayer`. No mock of a server or a client.
//!
//! Time: the kompoz layers run on a `ManualClock`, moved by the tests
//! (breaker recovery, timeouts, rate slots); the network runs on tokio's
//! real clock. The only real waits are `eventually(..)`, which polls a
//! condition until it holds (a liveness bound, not a timing assertion).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kompoz_core::call::Error;
use kompoz_core::{Breaker, CircuitState, Clock, ClockExt, ManualClock, RateLimit, Registry};
use kompoz_tower::{
    CircuitBreakerLayer, LimitLayer, RateLimitLayer, ServiceBuilderExt, TimeoutLayer,
};
use tokio::sync::Notify;
use tower::ServiceBuilder;

type ClientError = hyper_util::client::legacy::Error;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

// ---------------------------------------------------------------------------
// The flaky upstream: a real axum server.

const UP: u8 = 0;
const FAILING: u8 = 1;
const HANGING: u8 = 2;

/// What the upstream does, and what it saw.
#[derive(Default)]
struct Upstream {
    mode: AtomicU8,
    /// Requests that reached the handler.
    hits: AtomicUsize,
    /// Requests in the handler right now, and the most there ever were.
    inside: AtomicUsize,
    peak: AtomicUsize,
    /// Wakes hanging handlers (they then answer as the mode says).
    release: Notify,
}

impl Upstream {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode != HANGING {
            self.release.notify_waiters();
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Counts a handler out, however it ends (answered, or dropped when its
/// caller goes away).
struct InFlight<'a> {
    upstream: &'a Upstream,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.upstream.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn upstream_handler(State(up): State<Arc<Upstream>>) -> StatusCode {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let now = up.inside.fetch_add(1, Ordering::SeqCst) + 1;
    up.peak.fetch_max(now, Ordering::SeqCst);
    let _counted = InFlight { upstream: &up };
    loop {
        let released = up.release.notified();
        match up.mode.load(Ordering::SeqCst) {
            UP => break StatusCode::OK,
            FAILING => break StatusCode::INTERNAL_SERVER_ERROR,
            _ => released.await,
        }
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn start_upstream() -> (Arc<Upstream>, SocketAddr) {
    let up = Arc::new(Upstream::default());
    let router = Router::new()
        .route("/work", get(upstream_handler))
        .with_state(up.clone());
    (up.clone(), serve(router).await)
}

// ---------------------------------------------------------------------------
// The front server: a route forwarding to the upstream through kompoz layers.

/// A hyper client with no connection pool: every request has a connection
/// of its own, closed with it, so a request dropped on one side is seen on
/// the other, and no test leans on connection reuse.
fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

/// The leaf: forwards a request to the upstream over HTTP.
fn proxy(
    upstream: SocketAddr,
) -> impl tower::Service<
    Request,
    Response = Response<Body>,
    Error = ClientError,
    Future = impl Future<Output = Result<Response<Body>, ClientError>> + Send,
> + Clone
+ Send
+ Sync
+ 'static {
    let client = client();
    tower::service_fn(move |_: Request| {
        let client = client.clone();
        async move {
            let uri = format!("http://{upstream}/work").parse().unwrap();
            let response = client.get(uri).await?;
            Ok(response.map(Body::new))
        }
    })
}

/// What the front answers for each refusal.
fn to_response(
    clock: ManualClock,
) -> impl Fn(Error<ClientError>) -> std::future::Ready<Response<Body>> + Clone {
    move |err| {
        let status = match &err {
            Error::CircuitOpen(_) | Error::PoolFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        };
        let mut response = (status, err.to_string()).into_response();
        if let Some(at) = err.retry_at() {
            let secs = at.duration_since(clock.now()).as_secs_f64().ceil() as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        std::future::ready(response)
    }
}

/// 5xx from the upstream is a failure for the breaker, as is every error.
fn upstream_failed(result: &Result<Response<Body>, Error<ClientError>>) -> bool {
    match result {
        Ok(response) => response.status().is_server_error(),
        Err(_) => true,
    }
}

async fn get_status(client: &HttpClient, front: SocketAddr, path: &str) -> StatusCode {
    let uri = format!("http://{front}{path}").parse().unwrap();
    client.get(uri).await.unwrap().status()
}

async fn get_response(
    client: &HttpClient,
    front: SocketAddr,
    path: &str,
) -> Response<hyper::body::Incoming> {
    let uri = format!("http://{front}{path}").parse().unwrap();
    client.get(uri).await.unwrap()
}

/// Polls `condition` until it holds; panics (with `what`) if it does not
/// within ten seconds, which only a bug takes.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

fn breaker(clock: &ManualClock, failures: u32) -> Breaker<ManualClock> {
    clock
        .shared_breaker()
        .failure_threshold(failures)
        .recovery_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_opens_under_failure_answers_503_while_open_and_recovers() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let breaker = breaker(&clock, 3);
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response(clock.clone())))
        .layer(CircuitBreakerLayer::new(&breaker).failure_if(upstream_failed))
        .with_timeout(Duration::from_secs(5), clock.clone())
        .unwrap()
        .inner_error()
        .service(proxy(upstream));
    let front = serve(Router::new().route_service("/api", route)).await;
    let client = client();

    assert_eq!(get_status(&client, front, "/api").await, StatusCode::OK);

    up.set(FAILING);
    for _ in 0..3 {
        // Proxied as it is; the classifier counts each 500 as a failure.
        assert_eq!(
            get_status(&client, front, "/api").await,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(breaker.state(), CircuitState::Open);

    // Open: refused at the front, the upstream is spared, even once it is back.
    up.set(UP);
    let hits = up.hits();
    let refused = get_response(&client, front, "/api").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "30");
    assert_eq!(
        get_status(&client, front, "/api").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(up.hits(), hits);

    // After the recovery timeout, one probe goes through and closes it.
    clock.advance(Duration::from_secs(30));
    assert_eq!(get_status(&client, front, "/api").await, StatusCode::OK);
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(up.hits(), hits + 1);
    assert_eq!(get_status(&client, front, "/api").await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_answers_504_and_counts_as_a_failure() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let breaker = breaker(&clock, 1);
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response(clock.clone())))
        .circuit_breaker(&breaker)
        .with_timeout(Duration::from_secs(2), clock.clone())
        .unwrap()
        .inner_error()
        .service(proxy(upstream));
    let front = serve(Router::new().route_service("/api", route)).await;
    let client = client();

    up.set(HANGING);
    let call = tokio::spawn({
        let client = client.clone();
        async move { get_status(&client, front, "/api").await }
    });
    // The request is at the upstream (so the proxy's call is under way) and
    // the front's timer is armed.
    eventually("the request reaches the upstream", || up.hits() == 1).await;
    eventually("the timeout is armed", || clock.pending_sleeps() == 1).await;
    clock.advance(Duration::from_secs(2));
    assert_eq!(call.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_requests_back_in_poll_ready() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let limit = LimitLayer::new(1).unwrap();
    let pool = limit.pool().clone();
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response(clock.clone())))
        .layer(limit)
        .inner_error()
        .service(proxy(upstream));
    let front = serve(Router::new().route_service("/api", route)).await;
    let client = client();

    up.set(HANGING);
    let first = tokio::spawn({
        let client = client.clone();
        async move { get_status(&client, front, "/api").await }
    });
    eventually("the first request reaches the upstream", || up.hits() == 1).await;
    let second = tokio::spawn({
        let client = client.clone();
        async move { get_status(&client, front, "/api").await }
    });
    // The second waits in the pool's queue, in `poll_ready`: it is not sent.
    eventually("the second request queues for a permit", || {
        pool.waiting() == 1
    })
    .await;
    assert_eq!(up.hits(), 1);
    assert_eq!(pool.available(), 0);

    up.set(UP);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    assert_eq!(up.hits(), 2);
    assert_eq!(up.peak.load(Ordering::SeqCst), 1);
    eventually("both permits are back", || pool.available() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_clones_share_a_named_pool_and_a_breaker() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let registry = Registry::new();
    let breaker = breaker(&clock, 2);
    // Two routes, each its own stack, naming one pool and holding one breaker.
    let route = |path: &str| {
        let limit = LimitLayer::named_in("upstream", 1, &registry)
            .unwrap()
            .reject_when_full();
        let service = ServiceBuilder::new()
            .layer(HandleErrorLayer::new(to_response(clock.clone())))
            .layer(limit)
            .layer(CircuitBreakerLayer::new(&breaker).failure_if(upstream_failed))
            .inner_error()
            .service(proxy(upstream));
        Router::new().route_service(path, service)
    };
    let front = serve(route("/a").merge(route("/b"))).await;
    let pool = registry.existing_pool("upstream").unwrap();
    let client = client();

    // A request on /a holds the one permit: /b sheds its request with 503.
    up.set(HANGING);
    let held = tokio::spawn({
        let client = client.clone();
        async move { get_status(&client, front, "/a").await }
    });
    eventually("the /a request reaches the upstream", || up.hits() == 1).await;
    assert_eq!(
        get_status(&client, front, "/b").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(up.hits(), 1);

    // Failures through /a and /b count into the one breaker.
    up.set(FAILING);
    assert_eq!(held.await.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
    eventually("the permit is back", || pool.available() == 1).await;
    assert_eq!(
        get_status(&client, front, "/b").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(breaker.state(), CircuitState::Open);
    up.set(UP);
    assert_eq!(
        get_status(&client, front, "/a").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get_status(&client, front, "/b").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let limiter = clock.rate_limiter(RateLimit::per_second(2).unwrap());
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response(clock.clone())))
        .layer(RateLimitLayer::new(&limiter))
        .inner_error()
        .service(proxy(upstream));
    let front = serve(Router::new().route_service("/api", route)).await;
    let client = client();

    assert_eq!(get_status(&client, front, "/api").await, StatusCode::OK);
    let refused = get_response(&client, front, "/api").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1"); // 500 ms, rounded up
    assert_eq!(up.hits(), 1);

    clock.advance(Duration::from_millis(500));
    assert_eq!(get_status(&client, front, "/api").await, StatusCode::OK);
    assert_eq!(up.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_leak_no_permit_and_no_probe_slot() {
    let clock = ManualClock::new();
    let (up, upstream) = start_upstream().await;
    let breaker = breaker(&clock, 1);
    let limit = LimitLayer::new(2).unwrap();
    let pool = limit.pool().clone();
    let route = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response(clock.clone())))
        .layer(limit)
        .layer(CircuitBreakerLayer::new(&breaker).failure_if(upstream_failed))
        .layer(TimeoutLayer::new(Duration::from_secs(60), clock.clone()).unwrap())
        .inner_error()
        .service(proxy(upstream));
    let front = serve(Router::new().route_service("/api", route)).await;

    // Two requests hold both permits; a third waits for one in `poll_ready`.
    up.set(HANGING);
    let mut calls = Vec::new();
    for n in 1..=3 {
        calls.push(tokio::spawn(async move {
            // A client of its own per request: aborting it closes its connection.
            get_status(&client(), front, "/api").await
        }));
        if n <= 2 {
            eventually("the request reaches the upstream", || up.hits() == n).await;
        }
    }
    eventually("the third request queues", || pool.waiting() == 1).await;

    // The clients hang up mid-flight.
    for call in &calls {
        call.abort();
    }
    eventually("every permit and queue place is back", || {
        pool.available() == 2 && pool.waiting() == 0
    })
    .await;
    assert_eq!(breaker.state(), CircuitState::Closed); // a cancelled call is no failure

    // Open the breaker, let it reach HALF_OPEN, and hang up on the probe.
    up.set(FAILING);
    assert_eq!(
        get_status(&client(), front, "/api").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(breaker.state(), CircuitState::Open);
    clock.advance(Duration::from_secs(30));
    up.set(HANGING);
    // (Counted from here: when the first two hung up, the queued third may
    // have taken a freed permit and reached the upstream before it was dropped.)
    let hits = up.hits();
    let probe = tokio::spawn(async move { get_status(&client(), front, "/api").await });
    eventually("the probe reaches the upstream", || up.hits() == hits + 1).await;
    assert_eq!(breaker.state(), CircuitState::HalfOpen);
    // Its one probe slot is taken: another request is refused meanwhile.
    assert_eq!(
        get_status(&client(), front, "/api").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    probe.abort();
    // The probe's limit permit is back only once the front dropped the whole
    // request (the limit's future drops the breaker's inside it first).
    eventually("the probe's request is dropped", || pool.available() == 2).await;

    // The slot came back: the next request is the probe, and closes the circuit.
    up.set(UP);
    assert_eq!(get_status(&client(), front, "/api").await, StatusCode::OK);
    assert_eq!(breaker.state(), CircuitState::Closed);
    eventually("every permit is back", || pool.available() == 2).await;
}
