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
            // Ours only if our child still runs and the server answering
            // says it is our child: another test's server may hold the port
            // (ours then exits with "address in use").
            if let Some(pid) = server_pid(self.port, self.password.as_deref()) {
                if child.try_wait()?.is_none() && pid == child.id() {
                    self.child = Some(child);
                    return Ok(());
                }
                if pid != child.id() {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "port {} is held by another redis-server (pid {pid})",
                            self.port
                        ),
                    ));
                }
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
                    "redis-server on port {} did not answer INFO within {START_TIMEOUT:?}",
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

/// The `process_id` of the Redis server answering on the port (after
/// `AUTH` when a password is given), or `None` if none answers yet.
fn server_pid(port: u16, password: Option<&str>) -> Option<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut request = Vec::new();
    if let Some(password) = password {
        request.extend_from_slice(
            format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len()).as_bytes(),
        );
    }
    request.extend_from_slice(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
    stream.write_all(&request).ok()?;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        text.extend_from_slice(&buf[..n]);
        let reply = String::from_utf8_lossy(&text);
        if reply.starts_with('-') || reply.contains("\r\n-") {
            return None;
        }
        if let Some(at) = reply.find("process_id:") {
            let rest = &reply[at + "process_id:".len()..];
            if let Some(end) = rest.find("\r\n") {
                return rest[..end].trim().parse().ok();
            }
        }
        if text.len() > 1 << 16 {
            return None;
        }
    }
}
