//! Helpers shared by the test files: a server per test, and child processes
//! of the test binary playing other replicas.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use kompoz_redis::test_server::RedisServer;
use std::time::{Duration, Instant};

/// A fresh server; the tests need one (CI installs `redis-server`).
pub fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|err| {
        panic!("these tests need redis-server (apt-get install redis-server): {err}")
    })
}

/// Waits (up to 20 s) until `done` says so; fails naming `what` if never.
pub async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The environment variable that makes the test binary a child replica.
pub const ROLE: &str = "KOMPOZ_REDIS_CHILD_ROLE";
pub const URL: &str = "KOMPOZ_REDIS_CHILD_URL";
pub const KEY: &str = "KOMPOZ_REDIS_CHILD_KEY";

/// Another OS process running this test binary's `entry` test with a role.
pub struct Replica {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Replica {
    /// Starts `entry` (the name of the test function that dispatches roles)
    /// in a child process as `role`, against `url` and `key`.
    pub fn spawn(entry: &str, role: &str, url: &str, key: &str) -> Replica {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([entry, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(URL, url)
            .env(KEY, key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a replica");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Replica {
            child,
            stdin: Some(stdin),
            stdout,
        }
    }

    /// The next line the replica reported (lines starting with `@@ `),
    /// without the prefix.
    pub fn next(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read a replica");
            assert!(n > 0, "the replica exited before reporting");
            // libtest may print `test replica ... ` before the first line.
            if let Some(at) = line.find("@@ ") {
                return line[at + 3..].trim_end().to_owned();
            }
        }
    }

    /// The next report, parsed as `name=value` pairs; the value of `name`.
    pub fn field(report: &str, name: &str) -> u64 {
        report
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {report:?}"))
    }

    /// Tells the replica something (a line on its stdin).
    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to a replica");
        stdin.flush().expect("flush");
    }

    /// Kills the replica at once (SIGKILL: no destructor runs), as a crash.
    pub fn kill(mut self) {
        self.child.kill().expect("kill a replica");
        let _ = self.child.wait();
    }

    /// Waits for the replica to exit, and checks it passed.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for a replica");
        assert!(status.success(), "a replica failed: {status}");
    }
}

impl Drop for Replica {
    /// A test that fails half-way leaves no replica running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// In a child: reports a line to the parent.
pub fn report(line: &str) {
    println!("@@ {line}");
}

/// In a child: waits for the parent's next line.
pub fn wait_for_parent() -> String {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("read the parent");
    line.trim().to_owned()
}

/// The role this process plays, if it is a child replica.
pub fn child_role() -> Option<(String, String, String)> {
    let role = std::env::var(ROLE).ok()?;
    Some((
        role,
        std::env::var(URL).expect("url"),
        std::env::var(KEY).expect("key"),
    ))
}
