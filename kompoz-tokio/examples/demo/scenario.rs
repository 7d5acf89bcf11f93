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

use kompoz_tokio::{
    CircuitState, Combinator, ConfigError, Registry, circuit_breaker, limited_named_in,
    limiter::LimitOutcome, retry, with_timeout,
};

use crate::service::{self, Connection, Phase, Schedule};

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
    /// Each call's budget (`with_timeout`).
    pub(crate) timeout: Duration,
    /// The shared pool's size (`limited_named`).
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

/// The per-call context: the caller's connection (reused until a call is
/// abandoned) and what happened to this call.
#[derive(Clone, Debug)]
struct Call {
    addr: SocketAddr,
    conn: Arc<Mutex<Option<Connection>>>,
    reached_service: bool,
    timed_out: bool,
}

/// The innermost step: one request to the service.
#[derive(Debug)]
struct ServiceCall;

impl Combinator<Call> for ServiceCall {
    async fn run(&self, mut call: Call) -> (bool, Call) {
        call.reached_service = true;
        // The connection is taken out for the call and put back only after
        // a clean answer: a call dropped half-way (timed out) closes it.
        let taken = call.conn.lock().unwrap().take();
        let mut conn = match taken {
            Some(conn) => conn,
            None => match Connection::open(call.addr).await {
                Ok(conn) => conn,
                Err(_) => return (false, call),
            },
        };
        match conn.request().await {
            Ok(ok) => {
                *call.conn.lock().unwrap() = Some(conn);
                (ok, call)
            }
            Err(_) => (false, call),
        }
    }
}

/// How one call ended, from the caller's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// The service answered OK.
    Ok,
    /// The service answered with an error (after retries).
    Failed,
    /// No answer within the budget.
    TimedOut,
    /// The breaker refused the call: the service never saw it.
    BreakerRejected,
    /// The pool stayed full for longer than the caller would wait.
    LimiterRejected,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    at: Duration,
    class: Class,
    latency: Duration,
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

/// Counts of one class of outcome, per phase.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    /// Calls made.
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
}

impl Counts {
    fn add(&mut self, class: Class) {
        self.sent += 1;
        match class {
            Class::Ok => self.ok += 1,
            Class::Failed => self.failed += 1,
            Class::TimedOut => self.timed_out += 1,
            Class::BreakerRejected => self.breaker_rejected += 1,
            Class::LimiterRejected => self.limiter_rejected += 1,
        }
    }
}

/// What the run observed.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    /// Every breaker transition, in order.
    pub(crate) transitions: Vec<Transition>,
    /// Outcomes by the phase the call started in.
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

    let transitions = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let stack = Arc::new(build_stack(&settings, Arc::clone(&transitions), started)?);

    writeln!(
        out,
        "kompoz demo: {} callers -> a flaky service on {addr}\n\
         stack: limited_named({}, \"flaky-service\", wait <= {:?})\n\
         \x20        > circuit_breaker({} failures, recovery {:?})\n\
         \x20        > with_timeout({:?}) > retry(2, 10 ms) > request\n",
        settings.callers,
        settings.pool_size,
        settings.pool_wait,
        settings.failure_threshold,
        settings.recovery_timeout,
        settings.timeout,
    )?;
    writeln!(out, "{}", header())?;

    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let starts = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let end = schedule.total();
    let callers: Vec<_> = (0..settings.callers)
        .map(|i| {
            let stack = Arc::clone(&stack);
            let events = Arc::clone(&events);
            let starts = Arc::clone(&starts);
            let pace = settings.pace;
            tokio::spawn(async move {
                // Callers start spread over one pace, not all at once.
                tokio::time::sleep(pace * i as u32 / 16).await;
                let conn = Arc::new(Mutex::new(None));
                while started.elapsed() < end {
                    let call = Call {
                        addr,
                        conn: Arc::clone(&conn),
                        reached_service: false,
                        timed_out: false,
                    };
                    let at = started.elapsed();
                    starts.lock().unwrap().push(at);
                    let (outcome, call) = stack.run_with_outcome(call).await;
                    let latency = started.elapsed() - at;
                    let class = match outcome {
                        LimitOutcome::Rejected => Class::LimiterRejected,
                        LimitOutcome::Ran(true) => Class::Ok,
                        LimitOutcome::Ran(false) if call.timed_out => Class::TimedOut,
                        LimitOutcome::Ran(false) if !call.reached_service => Class::BreakerRejected,
                        LimitOutcome::Ran(false) => Class::Failed,
                    };
                    events.lock().unwrap().push(Event { at, class, latency });
                    tokio::time::sleep(pace).await;
                }
            })
        })
        .collect();

    // One row per interval, printed as the run goes: the calls sent in the
    // interval, and the outcomes of the calls that ended in it.
    let mut row_start = Duration::ZERO;
    while row_start < end {
        let row_end = (row_start + schedule.interval).min(end);
        tokio::time::sleep_until(started + row_end).await;
        let in_row = |t: Duration| t >= row_start && t < row_end;
        let sent = starts
            .lock()
            .unwrap()
            .iter()
            .filter(|&&t| in_row(t))
            .count() as u64;
        let ended: Vec<Event> = events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| in_row(e.at + e.latency))
            .copied()
            .collect();
        let (phase, _) = schedule.phase_at(row_start);
        writeln!(
            out,
            "{}",
            row(row_end, phase, sent, &ended, stack.get_ref().state(), color)
        )?;
        out.flush()?;
        row_start = row_end;
    }
    for caller in callers {
        caller.await?;
    }

    let events = events.lock().unwrap().clone();
    let mut by_phase: Vec<(Phase, Counts)> = schedule
        .phases
        .iter()
        .map(|&(p, _)| (p, Counts::default()))
        .collect();
    for e in &events {
        let (phase, _) = schedule.phase_at(e.at);
        if let Some((_, counts)) = by_phase.iter_mut().find(|(p, _)| *p == phase) {
            counts.add(e.class);
        }
    }
    let report = Report {
        transitions: transitions.lock().unwrap().clone(),
        by_phase,
        final_state: stack.get_ref().state(),
        pool_available: stack.available(),
        pool_size: settings.pool_size,
    };
    write!(out, "{}", summary(&report, &schedule, &events))?;
    Ok(report)
}

type Stack = kompoz_tokio::Limited<
    kompoz_tokio::CircuitBreaker<
        kompoz_tokio::Timeout<
            kompoz_tokio::Retry<ServiceCall, kompoz_tokio::TokioClock>,
            kompoz_tokio::TokioClock,
            fn(Call) -> Call,
        >,
        kompoz_tokio::TokioClock,
    >,
    kompoz_tokio::TokioClock,
>;

fn mark_timed_out(mut call: Call) -> Call {
    call.timed_out = true;
    call
}

/// The stack a user would write: a shared pool around a breaker around a
/// per-call budget, with one quick retry for a transient error.
fn build_stack(
    settings: &Settings,
    transitions: Arc<Mutex<Vec<Transition>>>,
    started: tokio::time::Instant,
) -> Result<Stack, ConfigError> {
    // Each run gets its own registry, so tests can run the story in parallel.
    let registry = Registry::new();
    let request = retry(ServiceCall, 2)?.fixed(Duration::from_millis(10));
    let budgeted =
        with_timeout(request, settings.timeout)?.on_timeout(mark_timed_out as fn(Call) -> Call);
    let protected = circuit_breaker(budgeted)
        .failure_threshold(settings.failure_threshold)
        .recovery_timeout(settings.recovery_timeout)
        .on_state_change(move |from, to, _stats| {
            transitions.lock().unwrap().push(Transition {
                at: started.elapsed(),
                from,
                to,
            });
        })
        .build()?;
    Ok(
        limited_named_in(protected, settings.pool_size, "flaky-service", &registry)?
            .wait_at_most(settings.pool_wait),
    )
}

fn header() -> String {
    format!(
        "{:>6}  {:<10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>7} {:>6} {:>6}  {:<9}  {}",
        "time",
        "phase",
        "sent",
        "ok",
        "fail",
        "t/out",
        "cb-rej",
        "lim-rej",
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

fn row(
    at: Duration,
    phase: Phase,
    sent: u64,
    events: &[Event],
    state: CircuitState,
    color: bool,
) -> String {
    let mut counts = Counts::default();
    let mut latencies: Vec<Duration> = Vec::new();
    for e in events {
        counts.add(e.class);
        if matches!(e.class, Class::Ok | Class::Failed | Class::TimedOut) {
            latencies.push(e.latency);
        }
    }
    latencies.sort();
    let ended = counts.sent;
    counts.sent = sent;
    let p = |q| percentile(&latencies, q).map_or_else(|| "-".to_string(), millis);
    format!(
        "{:>5.1}s  {:<10} {:>5} {:>5} {:>5} {:>6} {:>6} {:>7} {:>6} {:>6}  {}  {}",
        at.as_secs_f64(),
        phase,
        counts.sent,
        counts.ok,
        counts.failed,
        counts.timed_out,
        counts.breaker_rejected,
        counts.limiter_rejected,
        p(0.5),
        p(0.99),
        state_label(state, color),
        band(&counts, ended, color),
    )
}

fn summary(report: &Report, schedule: &Schedule, events: &[Event]) -> String {
    let mut total = Counts::default();
    for e in events {
        total.add(e.class);
    }
    let mut s = String::new();
    let _ = writeln!(s, "\nSummary");
    let _ = writeln!(
        s,
        "  {} calls: {} ok, {} failed, {} timed out, {} refused by the breaker, {} refused by the pool",
        total.sent,
        total.ok,
        total.failed,
        total.timed_out,
        total.breaker_rejected,
        total.limiter_rejected
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
