//! The demo's logic: traffic from many callers through a resilience stack
//! at the flaky service, a timeline of what happened, and a summary.
//!
//! Shared by the `demo` example (the full 14-second story) and the
//! `demo_story` test (the same story at a fifth of the length).

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kompoz_tokio::observe::{self, Event as LayerEvent};
use kompoz_tokio::{
    CircuitState, Error, Registry, Semaphore, circuit_breaker, policy, shared_breaker,
};

use crate::service::{self, Connection, Phase, Schedule};

/// The name every layer of the stack carries (events, `tracing`, metrics).
pub(crate) const NAME: &str = "flaky-service";

/// How the callers and their stack are set up.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The service's script.
    pub(crate) schedule: Schedule,
    /// Seeds the service's behaviour.
    pub(crate) seed: u64,
    /// Concurrent callers.
    pub(crate) callers: usize,
    /// Pause between one caller's calls.
    pub(crate) pace: Duration,
    /// Each call's budget (the timeout layer).
    pub(crate) timeout: Duration,
    /// The shared pool's size (`limit_named`).
    pub(crate) pool_size: usize,
    /// How long a call waits for the pool before it is rejected.
    pub(crate) pool_wait: Duration,
    /// Consecutive failures that open the breaker.
    pub(crate) failure_threshold: u32,
    /// How long the breaker stays open before a probe.
    pub(crate) recovery_timeout: Duration,
}

impl Settings {
    /// The settings for `schedule`: the breaker's recovery timeout is half a
    /// timeline interval, so each row shows what the breaker did.
    pub(crate) fn for_schedule(schedule: Schedule) -> Self {
        Settings {
            recovery_timeout: schedule.interval / 2,
            schedule,
            seed: 0x6b6f_6d70_6f7a,
            callers: 16,
            pace: Duration::from_millis(20),
            timeout: Duration::from_millis(150),
            pool_size: 8,
            pool_wait: Duration::from_millis(100),
            failure_threshold: 5,
        }
    }
}

/// Why one request failed: the service said no, or the connection broke.
#[derive(Debug)]
enum ServiceError {
    Refused,
    Io(std::io::Error),
}

/// One request to the service over the caller's connection (reused until
/// an attempt is abandoned).
async fn request(
    addr: SocketAddr,
    conn: Arc<Mutex<Option<Connection>>>,
) -> Result<(), ServiceError> {
    // The connection is taken out for the call and put back only after a
    // clean answer: an attempt dropped half-way (timed out) closes it.
    let taken = conn.lock().unwrap().take();
    let mut open = match taken {
        Some(open) => open,
        None => Connection::open(addr).await.map_err(ServiceError::Io)?,
    };
    let ok = open.request().await.map_err(ServiceError::Io)?;
    *conn.lock().unwrap() = Some(open);
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Refused)
    }
}

/// One event of the stack's layers, timed from the start of the run.
#[derive(Clone, Debug)]
struct Heard {
    at: Duration,
    event: LayerEvent,
}

/// A breaker transition, timed from the start of the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transition {
    /// When it happened.
    pub(crate) at: Duration,
    /// The state before.
    pub(crate) from: CircuitState,
    /// The state after.
    pub(crate) to: CircuitState,
}

/// Calls by how they ended, tallied from events.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    /// Calls that ended.
    pub(crate) sent: u64,
    /// Answered OK.
    pub(crate) ok: u64,
    /// Answered with an error.
    pub(crate) failed: u64,
    /// Timed out.
    pub(crate) timed_out: u64,
    /// Refused by the breaker.
    pub(crate) breaker_rejected: u64,
    /// Refused by the limiter.
    pub(crate) limiter_rejected: u64,
    /// Retries (a call may be retried and still end in any class).
    pub(crate) retried: u64,
}

impl Counts {
    /// Tallies `events`: each call ends in one breaker outcome or refusal,
    /// or a pool refusal; a timeout is also a breaker failure, so failures
    /// are the breaker's minus the timeouts.
    fn tally<'a>(events: impl IntoIterator<Item = &'a LayerEvent>) -> Counts {
        use kompoz_tokio::circuit_breaker::BreakerEvent as B;
        let mut c = Counts::default();
        let mut failures: u64 = 0;
        for event in events {
            match event {
                LayerEvent::Breaker(B::Success { .. }) => c.ok += 1,
                LayerEvent::Breaker(B::Failure { .. }) => failures += 1,
                LayerEvent::Breaker(B::Rejected { .. }) => c.breaker_rejected += 1,
                LayerEvent::TimedOut { .. } => c.timed_out += 1,
                LayerEvent::PoolRefused { .. } => c.limiter_rejected += 1,
                LayerEvent::Retry { .. } => c.retried += 1,
                _ => {}
            }
        }
        c.failed = failures.saturating_sub(c.timed_out);
        c.sent = c.ok + c.failed + c.timed_out + c.breaker_rejected + c.limiter_rejected;
        c
    }
}

/// What the run observed.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    /// Every breaker transition, in order.
    pub(crate) transitions: Vec<Transition>,
    /// Outcomes by the phase the call ended in.
    pub(crate) by_phase: Vec<(Phase, Counts)>,
    /// The breaker's state at the end.
    pub(crate) final_state: CircuitState,
    /// Permits free in the pool at the end (all of them once callers stop).
    pub(crate) pool_available: usize,
    /// The pool's size.
    pub(crate) pool_size: usize,
}

impl Report {
    /// The counts for `phase`.
    pub(crate) fn phase(&self, phase: Phase) -> Counts {
        self.by_phase
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }
}

/// Runs the story, printing the timeline and the summary to `out`.
pub(crate) async fn run(
    settings: Settings,
    out: &mut (dyn Write + Send),
    color: bool,
) -> Result<Report, Box<dyn std::error::Error + Send + Sync>> {
    let started = tokio::time::Instant::now();
    let schedule = settings.schedule.clone();
    let addr = service::start(schedule.clone(), settings.seed, started).await?;

    // Every layer reports here; the timeline and the summary are read from it.
    let heard = Arc::new(Mutex::new(Vec::<Heard>::new()));
    let listen = {
        let heard = Arc::clone(&heard);
        move |_name: &str, event: &LayerEvent| {
            heard.lock().unwrap().push(Heard {
                at: started.elapsed(),
                event: event.clone(),
            });
        }
    };
    // Each run gets its own registry, so tests can run the story in parallel.
    let registry = Registry::new();
    let breaker = shared_breaker()
        .failure_threshold(settings.failure_threshold)
        .recovery_timeout(settings.recovery_timeout)
        .on_event(observe::breaker_reporter(NAME, listen.clone()))
        .build()?;
    // The stack a user would write: a shared pool around a breaker around a
    // per-call budget, with one quick retry for a transient error; every
    // layer named, and told to report to `listen`.
    let stack = Arc::new(
        policy()
            .limit_named_in(settings.pool_size, NAME, &registry)?
            .wait_at_most(settings.pool_wait)
            .on_event(listen.clone())
            .breaker(&breaker)
            .timeout(settings.timeout)?
            .name(NAME)
            .on_event(listen.clone())
            .retry(2)?
            .fixed(Duration::from_millis(10))
            .name(NAME)
            .on_event(listen),
    );
    let pool: Arc<Semaphore> = registry.existing_pool(NAME).expect("the stack's pool");

    writeln!(
        out,
        "kompoz demo: {} callers -> a flaky service on {addr}\n\
         stack: limit_named({}, \"{NAME}\").wait_at_most({:?})\n\
         \x20        > breaker({} failures, recovery {:?})\n\
         \x20        > timeout({:?}) > retry(2).fixed(10 ms) > request\n\
         timeline: tallied from the layers' events (observe::Event)\n",
        settings.callers,
        settings.pool_size,
        settings.pool_wait,
        settings.failure_threshold,
        settings.recovery_timeout,
        settings.timeout,
    )?;
    writeln!(out, "{}", header())?;

    let end = schedule.total();
    let callers: Vec<_> = (0..settings.callers)
        .map(|i| {
            let stack = Arc::clone(&stack);
            let pace = settings.pace;
            tokio::spawn(async move {
                // Callers start spread over one pace, not all at once.
                tokio::time::sleep(pace * i as u32 / 16).await;
                let conn = Arc::new(Mutex::new(None));
                while started.elapsed() < end {
                    let out: Result<(), Error<ServiceError>> =
                        stack.call(|| request(addr, Arc::clone(&conn))).await;
                    // What happened is in the events; the result is the caller's.
                    drop(out);
                    tokio::time::sleep(pace).await;
                }
            })
        })
        .collect();

    // One row per interval, printed as the run goes: the calls that ended
    // in the interval, by what the layers reported.
    let mut row_start = Duration::ZERO;
    while row_start < end {
        let row_end = (row_start + schedule.interval).min(end);
        tokio::time::sleep_until(started + row_end).await;
        let in_row: Vec<Heard> = heard
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.at >= row_start && h.at < row_end)
            .cloned()
            .collect();
        let (phase, _) = schedule.phase_at(row_start);
        writeln!(
            out,
            "{}",
            row(row_end, phase, &in_row, breaker.state(), color)
        )?;
        out.flush()?;
        row_start = row_end;
    }
    for caller in callers {
        caller.await?;
    }

    let heard = heard.lock().unwrap().clone();
    let by_phase: Vec<(Phase, Counts)> = schedule
        .phases
        .iter()
        .map(|&(p, _)| {
            let events = heard
                .iter()
                .filter(|h| schedule.phase_at(h.at).0 == p)
                .map(|h| &h.event);
            (p, Counts::tally(events))
        })
        .collect();
    let transitions = heard
        .iter()
        .filter_map(|h| match h.event {
            LayerEvent::Breaker(circuit_breaker::BreakerEvent::StateChange { from, to }) => {
                Some(Transition { at: h.at, from, to })
            }
            _ => None,
        })
        .collect();
    let report = Report {
        transitions,
        by_phase,
        final_state: breaker.state(),
        pool_available: pool.available(),
        pool_size: settings.pool_size,
    };
    write!(out, "{}", summary(&report, &schedule, &heard))?;
    writeln!(out, "  breaker: {}", breaker.stats())?;
    Ok(report)
}

fn header() -> String {
    format!(
        "{:>6}  {:<10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>7} {:>5} {:>6} {:>6}  {:<9}  {}",
        "time",
        "phase",
        "ended",
        "ok",
        "fail",
        "t/out",
        "cb-rej",
        "lim-rej",
        "retry",
        "p50",
        "p99",
        "breaker",
        "calls"
    )
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

const BAND: usize = 30;

/// A bar of `BAND` cells split in proportion to the outcomes of `ended`
/// calls (largest remainders get the leftover cells), empty if none ended.
fn band(counts: &Counts, ended: u64, color: bool) -> String {
    let parts = [
        (counts.ok, '#', "32"),
        (counts.failed, 'x', "31"),
        (counts.timed_out, 't', "33"),
        (counts.breaker_rejected, 'b', "34"),
        (counts.limiter_rejected, 'l', "35"),
    ];
    if ended == 0 {
        return String::new();
    }
    let exact: Vec<f64> = parts
        .iter()
        .map(|p| p.0 as f64 * BAND as f64 / ended as f64)
        .collect();
    let mut cells: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order
        .iter()
        .cycle()
        .take(BAND.saturating_sub(cells.iter().sum()))
    {
        cells[i] += 1;
    }
    let mut out = String::new();
    for (&(_, ch, code), &n) in parts.iter().zip(&cells) {
        if n == 0 {
            continue;
        }
        let run: String = std::iter::repeat_n(if color { '█' } else { ch }, n).collect();
        if color {
            let _ = write!(out, "\x1b[{code}m{run}\x1b[0m");
        } else {
            out.push_str(&run);
        }
    }
    out
}

fn state_label(state: CircuitState, color: bool) -> String {
    let text = format!("{state:<9}");
    if !color {
        return text;
    }
    let code = match state {
        CircuitState::Closed => "42;30",
        CircuitState::Open => "41;97",
        CircuitState::HalfOpen => "43;30",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

fn row(at: Duration, phase: Phase, heard: &[Heard], state: CircuitState, color: bool) -> String {
    use kompoz_tokio::circuit_breaker::BreakerEvent as B;
    let counts = Counts::tally(heard.iter().map(|h| &h.event));
    // Latency: how long the calls the breaker let through took.
    let mut latencies: Vec<Duration> = heard
        .iter()
        .filter_map(|h| match h.event {
            LayerEvent::Breaker(B::Success { elapsed } | B::Failure { elapsed }) => Some(elapsed),
            _ => None,
        })
        .collect();
    latencies.sort();
    let p = |q| percentile(&latencies, q).map_or_else(|| "-".to_string(), millis);
    format!(
        "{:>5.1}s  {:<10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>7} {:>5} {:>6} {:>6}  {}  {}",
        at.as_secs_f64(),
        phase,
        counts.sent,
        counts.ok,
        counts.failed,
        counts.timed_out,
        counts.breaker_rejected,
        counts.limiter_rejected,
        counts.retried,
        p(0.5),
        p(0.99),
        state_label(state, color),
        band(&counts, counts.sent, color),
    )
}

fn summary(report: &Report, schedule: &Schedule, heard: &[Heard]) -> String {
    let total = Counts::tally(heard.iter().map(|h| &h.event));
    let mut s = String::new();
    let _ = writeln!(s, "\nSummary");
    let _ = writeln!(
        s,
        "  {} calls: {} ok, {} failed, {} timed out, {} refused by the breaker, {} refused by the pool; {} retries",
        total.sent,
        total.ok,
        total.failed,
        total.timed_out,
        total.breaker_rejected,
        total.limiter_rejected,
        total.retried
    );
    let down = report.phase(Phase::Down);
    if down.sent > 0 {
        let _ = writeln!(
            s,
            "  while the service was down the breaker spared it {} of {} calls ({:.1}%)",
            down.breaker_rejected,
            down.sent,
            100.0 * down.breaker_rejected as f64 / down.sent as f64
        );
    }
    if let Some(down_at) = schedule.start_of(Phase::Down) {
        let opened = report
            .transitions
            .iter()
            .find(|t| t.at >= down_at && t.to == CircuitState::Open);
        let was_open = report
            .transitions
            .iter()
            .rev()
            .find(|t| t.at < down_at)
            .is_some_and(|t| t.to == CircuitState::Open);
        match opened {
            _ if was_open => {
                let _ = writeln!(
                    s,
                    "  the breaker was already open when the outage began (tripped by the slow phase)"
                );
            }
            Some(t) => {
                let _ = writeln!(
                    s,
                    "  outage noticed in {}: down at {:.1}s, breaker open at {:.3}s",
                    millis(t.at - down_at),
                    down_at.as_secs_f64(),
                    t.at.as_secs_f64()
                );
            }
            None => {
                let _ = writeln!(s, "  the breaker never opened during the outage");
            }
        }
    }
    if let Some(up_at) = schedule.start_of(Phase::Recovering) {
        match report
            .transitions
            .iter()
            .find(|t| t.at >= up_at && t.to == CircuitState::Closed)
        {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "  recovery noticed in {}: back at {:.1}s, breaker closed at {:.3}s",
                    millis(t.at - up_at),
                    up_at.as_secs_f64(),
                    t.at.as_secs_f64()
                );
            }
            None => {
                let _ = writeln!(s, "  the breaker had not closed again by the end");
            }
        }
    }
    let _ = writeln!(
        s,
        "  {} breaker transitions; final state {}; pool {}/{} permits free",
        report.transitions.len(),
        report.final_state,
        report.pool_available,
        report.pool_size
    );
    s
}
