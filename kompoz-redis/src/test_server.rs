//! A throwaway `redis-server` for tests, examples and benchmarks: started on
//! a free loopback port with nothing saved to disk, stopped on drop.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up (another process may take a free port
/// between the probe and the server's bind).
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child process on `127.0.0.1`, started with
/// `--save "" --appendonly no` (nothing reaches the disk) and killed when
/// this value is dropped.
///
/// `redis-server` does not take `--port 0`, so a free port is found by
/// binding `127.0.0.1:0` and releasing it; if the server then fails to
/// start (the port was taken meanwhile), another port is tried.
///
/// # Examples
///
/// ```no_run
/// use kompoz_redis::test_server::RedisServer;
///
/// let server = RedisServer::start()?;
/// println!("redis at {}", server.url());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: PathBuf,
}

impl RedisServer {
    /// Whether a `redis-server` binary is on the `PATH`.
    pub fn installed() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Errors
    ///
    /// `redis-server` is not installed, or no server answered on any of
    /// the ports tried.
    pub fn start() -> std::io::Result<RedisServer> {
        Self::start_with_password(None)
    }

    /// As [`start`](Self::start), with `--requirepass password` when given.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(password: Option<&str>) -> std::io::Result<RedisServer> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut server = RedisServer {
                child: None,
                port,
                password: password.map(str::to_owned),
                dir: std::env::temp_dir()
                    .join(format!("kompoz-redis-{}-{port}", std::process::id())),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no port tried")))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:port/`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Kills the server (its data is gone: nothing was saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    ///
    /// # Errors
    ///
    /// It did not answer (the port was taken meanwhile, most likely).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command.spawn().map_err(|err| {
            std::io::Error::new(
                err.kind(),
                format!(
                    "cannot run redis-server ({err}); install it: apt-get install redis-server"
                ),
            )
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "redis-server on port {} exited with {status}",
                    self.port
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Whether a Redis server answers on the port (`+PONG`, or `-NOAUTH` from
/// one that wants a password: it is up either way).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 16];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}
