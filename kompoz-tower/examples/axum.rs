//! An axum server whose upstream call is protected by kompoz layers.
//!
//! `GET /api` on the front server forwards to an upstream service (another
//! axum server here, which the script makes fail or hang) through
//! rate limit ∘ shared pool ∘ circuit breaker ∘ timeout. axum's
//! `HandleErrorLayer` turns kompoz's refusals into responses:
//!
//! | refusal | status |
//! |---|---|
//! | `Error::CircuitOpen`, `Error::PoolFull` | 503 Service Unavailable (with `Retry-After` when the breaker knows) |
//! | `Error::TimedOut` | 504 Gateway Timeout |
//! | `Error::RateLimited` | 429 Too Many Requests, with `Retry-After` |
//! | `Error::Inner` (the upstream unreachable) | 502 Bad Gateway |
//!
//! Both servers listen on 127.0.0.1 (port 0), a scripted client drives
//! them through healthy → burst → slow → down → recovered, the timeline is
//! printed, and the program exits 0 once every phase did what it should
//! (it runs in CI). Run it with
//!
//! ```sh
//! cargo run -p kompoz-tower --example axum
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
use kompoz_tokio::{Clock, ClockExt, RateLimit, TokioClock};
use kompoz_tower::{CircuitBreakerLayer, LimitLayer, ServiceBuilderExt};
use tokio::sync::Notify;
use tower::ServiceBuilder;

type ClientError = hyper_util::client::legacy::Error;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const HANGING: u8 = 2;

/// The upstream: answers 200, 500, or hangs until told otherwise.
#[derive(Default)]
struct Upstream {
    mode: AtomicU8,
    hits: AtomicUsize,
    release: Notify,
}

impl Upstream {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.release.notify_waiters();
    }
}

async fn upstream_handler(State(up): State<Arc<Upstream>>) -> StatusCode {
    up.hits.fetch_add(1, Ordering::SeqCst);
    loop {
        let released = up.release.notified();
        match up.mode.load(Ordering::SeqCst) {
            HEALTHY => return StatusCode::OK,
            FAILING => return StatusCode::INTERNAL_SERVER_ERROR,
            _ => released.await,
        }
    }
}

async fn serve(router: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// kompoz's refusals as HTTP responses.
async fn refusal_to_response(err: Error<ClientError>) -> Response<Body> {
    let status = match &err {
        Error::CircuitOpen(_) | Error::PoolFull(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_GATEWAY,
    };
    let mut response = (status, err.to_string()).into_response();
    // The wait is measured on the layers' clock: TokioClock here.
    if let Some(wait) = err.retry_after(TokioClock.now()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

/// An upstream 5xx counts as a failure for the breaker, as every error does.
fn upstream_failed(result: &Result<Response<Body>, Error<ClientError>>) -> bool {
    match result {
        Ok(response) => response.status().is_server_error(),
        Err(_) => true,
    }
}

/// The script's view: what came back, and when.
struct Timeline {
    start: Instant,
}

impl Timeline {
    fn line(&self, phase: &str, what: &str) {
        println!(
            "{:>8.3}s  {phase:<10} {what}",
            self.start.elapsed().as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The upstream.
    let up = Arc::new(Upstream::default());
    let upstream = serve(
        Router::new()
            .route("/work", get(upstream_handler))
            .with_state(up.clone()),
    )
    .await?;

    // The front: one breaker and one named pool, which every route and
    // every clone of the stack share.
    let clock = TokioClock::new();
    let breaker = clock
        .shared_breaker()
        .failure_threshold(3)
        .recovery_timeout(Duration::from_millis(500))
        .on_state_change(|old, new, _| println!("          breaker    {old} -> {new}"))
        .build()?;
    let limiter = clock.rate_limiter(RateLimit::with_burst(50, Duration::from_secs(1), 10)?);
    let proxy_client = client();
    let proxy = tower::service_fn(move |_: Request| {
        let client = proxy_client.clone();
        async move {
            let uri = format!("http://{upstream}/work")
                .parse()
                .expect("a valid URI");
            let response = client.get(uri).await?;
            Ok::<_, ClientError>(response.map(Body::new))
        }
    });
    let api = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(refusal_to_response))
        .rate_limited(&limiter)
        .layer(LimitLayer::named("upstream", 8)?.reject_when_full())
        .layer(CircuitBreakerLayer::new(&breaker).failure_if(upstream_failed))
        .with_timeout(Duration::from_millis(200), clock)?
        .inner_error() // hyper's client error is foreign: say it is the leaf's
        .service(proxy);
    let front = serve(Router::new().route_service("/api", api)).await?;

    // The scripted client.
    let timeline = Timeline {
        start: Instant::now(),
    };
    let client = client();
    let uri: axum::http::Uri = format!("http://{front}/api").parse()?;
    let call = |phase: &'static str| {
        let (client, uri, timeline) = (client.clone(), uri.clone(), &timeline);
        async move {
            let response = client.get(uri).await?;
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| format!(" (Retry-After: {}s)", v.to_str().unwrap_or("?")))
                .unwrap_or_default();
            timeline.line(
                phase,
                &format!("GET /api -> {}{retry_after}", response.status()),
            );
            Ok::<_, ClientError>(response.status())
        }
    };
    let mut surprises = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            surprises.push(what.to_owned());
        }
    };

    println!("front on http://{front}, upstream on http://{upstream}\n");
    println!("    time  phase      what");

    // Healthy: everything passes.
    for _ in 0..3 {
        let status = call("healthy").await?;
        expect("healthy calls pass", status == StatusCode::OK);
    }

    // A burst of 16 at once against 50/s with a burst of 10: the rate limit
    // answers 429 with the time of the next slot.
    let burst = futures::future::join_all((0..16).map(|_| call("burst"))).await;
    let limited = burst
        .iter()
        .filter(|s| matches!(s, Ok(StatusCode::TOO_MANY_REQUESTS)))
        .count();
    expect("the burst is rate limited", limited > 0);
    tokio::time::sleep(Duration::from_millis(200)).await; // the budget refills

    // Slow: the upstream hangs; the timeout answers 504 (a breaker failure).
    up.set(HANGING);
    let status = call("slow").await?;
    expect(
        "a hung upstream times out",
        status == StatusCode::GATEWAY_TIMEOUT,
    );
    up.set(HEALTHY);
    let status = call("slow").await?;
    expect("it answers again", status == StatusCode::OK);

    // Down: 500s open the breaker, which then answers 503 without calling.
    up.set(FAILING);
    for _ in 0..3 {
        let status = call("down").await?;
        expect(
            "failures are proxied",
            status == StatusCode::INTERNAL_SERVER_ERROR,
        );
    }
    let hits = up.hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        let status = call("open").await?;
        expect(
            "the open breaker answers 503",
            status == StatusCode::SERVICE_UNAVAILABLE,
        );
    }
    expect(
        "the open breaker spares the upstream",
        up.hits.load(Ordering::SeqCst) == hits,
    );

    // Recovered: after the recovery timeout one probe passes and closes it.
    up.set(HEALTHY);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let status = call("recovered").await?;
        expect("the recovered upstream answers", status == StatusCode::OK);
    }

    println!(
        "\nthe upstream saw {} requests; the breaker is {}",
        up.hits.load(Ordering::SeqCst),
        breaker.state()
    );
    if surprises.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected: {}", surprises.join("; ")).into())
    }
}
