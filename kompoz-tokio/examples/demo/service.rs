//! The flaky service the demo drives: a line-based TCP server on loopback
//! whose behaviour follows a scripted schedule of phases.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the service is going through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Fast and correct.
    Healthy,
    /// Correct, but often slower than the callers' timeout.
    Slow,
    /// Failing fast, and sometimes hanging.
    Down,
    /// Back up; a few errors while it warms.
    Recovering,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Healthy => "healthy",
            Phase::Slow => "slow",
            Phase::Down => "down",
            Phase::Recovering => "recovering",
        })
    }
}

/// The phases in order, each with its length.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    /// `(phase, how long it lasts)`, in order.
    pub(crate) phases: Vec<(Phase, Duration)>,
    /// One timeline row per interval.
    pub(crate) interval: Duration,
}

impl Schedule {
    /// The demo's story: about 14 seconds.
    pub(crate) fn standard() -> Self {
        Schedule {
            phases: vec![
                (Phase::Healthy, Duration::from_secs(3)),
                (Phase::Slow, Duration::from_secs(3)),
                (Phase::Down, Duration::from_secs(4)),
                (Phase::Recovering, Duration::from_secs(4)),
            ],
            interval: Duration::from_secs(1),
        }
    }

    /// The same story at a fifth of the length.
    pub(crate) fn short() -> Self {
        let standard = Self::standard();
        Schedule {
            phases: standard.phases.iter().map(|&(p, d)| (p, d / 5)).collect(),
            interval: standard.interval / 5,
        }
    }

    /// The whole length.
    pub(crate) fn total(&self) -> Duration {
        self.phases.iter().map(|&(_, d)| d).sum()
    }

    /// The phase at `elapsed` since the start, and how far into it.
    pub(crate) fn phase_at(&self, elapsed: Duration) -> (Phase, Duration) {
        let mut start = Duration::ZERO;
        for &(phase, len) in &self.phases {
            if elapsed < start + len {
                return (phase, elapsed - start);
            }
            start += len;
        }
        let &(phase, len) = self.phases.last().expect("a schedule has phases");
        (phase, len)
    }

    /// When `phase` first starts, from the beginning of the run.
    pub(crate) fn start_of(&self, phase: Phase) -> Option<Duration> {
        let mut start = Duration::ZERO;
        for &(p, len) in &self.phases {
            if p == phase {
                return Some(start);
            }
            start += len;
        }
        None
    }
}

/// A deterministic generator (splitmix64): the service's "randomness" is a
/// function of the seed and the request number, so runs tell the same story.
pub(crate) fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How the service answers request number `n` in `phase`, `into` it.
fn behaviour(
    seed: u64,
    n: u64,
    phase: Phase,
    into: Duration,
    schedule: &Schedule,
) -> (Duration, bool) {
    let r = mix(seed, n);
    let pct = r % 100;
    let ms = |lo: u64, hi: u64| Duration::from_millis(lo + (r >> 8) % (hi - lo + 1));
    match phase {
        Phase::Healthy => (ms(2, 12), true),
        // Slow enough to crowd the callers' pool; one call in ten takes
        // longer than their 150 ms budget.
        Phase::Slow => (if pct < 90 { ms(30, 140) } else { ms(200, 600) }, true),
        // Mostly fast errors; one in ten hangs.
        Phase::Down => (
            if pct < 90 {
                ms(1, 3)
            } else {
                Duration::from_secs(5)
            },
            false,
        ),
        // The first fifth of the phase still drops a quarter of the calls.
        Phase::Recovering => {
            let warming = into
                < schedule
                    .phases
                    .iter()
                    .find(|p| p.0 == Phase::Recovering)
                    .map_or(Duration::ZERO, |p| p.1 / 5);
            (ms(3, 15), !(warming && pct < 25))
        }
    }
}

/// Starts the service on a port the OS picks; returns its address.
pub(crate) async fn start(
    schedule: Schedule,
    seed: u64,
    started: tokio::time::Instant,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let schedule = Arc::new(schedule);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let schedule = Arc::clone(&schedule);
            let counter = Arc::clone(&counter);
            tokio::spawn(serve(stream, schedule, counter, seed, started));
        }
    });
    Ok(addr)
}

async fn serve(
    stream: TcpStream,
    schedule: Arc<Schedule>,
    counter: Arc<std::sync::atomic::AtomicU64>,
    seed: u64,
    started: tokio::time::Instant,
) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (phase, into) = schedule.phase_at(started.elapsed());
        let (delay, ok) = behaviour(seed, n, phase, into, &schedule);
        tokio::time::sleep(delay).await;
        let reply: &[u8] = if ok { b"OK\n" } else { b"ERR\n" };
        if stream.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}

/// One client connection, reused across calls until a call is abandoned.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Connection {
    /// Connects to the service.
    pub(crate) async fn open(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Sends one request; `Ok(true)` for an `OK` answer.
    pub(crate) async fn request(&mut self) -> std::io::Result<bool> {
        self.stream.get_mut().write_all(b"REQ\n").await?;
        self.line.clear();
        if self.stream.read_line(&mut self.line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_end() == "OK")
    }
}
