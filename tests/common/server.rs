//! Long-running processes (`mandate`, example services) for black-box tests: a server started
//! on `127.0.0.1:0`, its announced URL, its stderr in a log file, killed and
//! reaped on drop; and a bounded poll for what a test waits on.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How often [`poll`] looks again.
pub const STEP: Duration = Duration::from_millis(20);
/// The longest a test waits for a process or a condition.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A `mandate` server process, killed (SIGKILL) and reaped on drop.
pub struct Server {
    pub name: String,
    pub child: Child,
    /// `http://127.0.0.1:PORT` (or `https://`), from the announcement on stdout.
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    /// Spawns `mandate ARGS` and waits (bounded) for its `... on http://ADDR`
    /// line. `Err` with its stderr when it exits without announcing.
    pub fn start(name: &str, args: &[&str], log: PathBuf) -> Result<Server, String> {
        Server::spawn(name, super::command(args), log)
    }

    /// As [`Server::start`], for a prepared command (extra environment, say).
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Server, String> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the child's whole life; ends when the child does.
        // Only the first line is awaited: later ones are read and dropped, so
        // a child that goes on printing never writes into a closed pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _after_the_announcement = tx.send(line);
            }
        });
        let mut server = Server {
            name: name.to_owned(),
            child,
            url: String::new(),
            log,
        };
        match rx.recv_timeout(TIMEOUT) {
            Ok(line) => {
                let start = line
                    .find("http://")
                    .or_else(|| line.find("https://"))
                    .unwrap_or_else(|| panic!("{name}: no URL in {line:?}"));
                server.url = line[start..]
                    .split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                Ok(server)
            }
            Err(_) => {
                server.kill();
                Err(format!(
                    "{name} did not announce its address; stderr:\n{}",
                    server.stderr()
                ))
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, like `kill -9`, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let (status, _) = poll(&format!("{} to exit after SIGTERM", self.name), || {
            self.child.try_wait().expect("try_wait")
        });
        assert!(
            status.success(),
            "{} should exit 0 after SIGTERM, got {status}; stderr:\n{}",
            self.name,
            self.stderr()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Calls `f` every [`STEP`] until it returns `Some`, at most [`TIMEOUT`].
/// Returns the value and how long it took.
#[track_caller]
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        thread::sleep(STEP);
    }
}
