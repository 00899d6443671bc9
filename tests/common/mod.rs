//! The harness the black-box tests share: running the `mandate` binary,
//! asserting what a run produced (exit code, one-line errors, `--json`
//! decisions), and a temporary folder of keys; `world` is the one fixture
//! (a root, agents' keys and their mandates) every test builds on, `tokens`
//! issues, delegates and proves through the binary, `blocks` appends blocks
//! without it, `http` speaks to servers, `server` runs them, `stage` is a
//! deployment of `mandate serve` for the scenarios, and `scenario` holds the
//! steps of PRODUCT.md's five scenarios on a stage, whatever the first
//! mandate came from; `idp` is a local identity provider for the issuer and
//! `issuer_site` the keys, registry and provider an issuer runs with.
//!
//! Each test file includes it with `#[path = "common/mod.rs"] mod common;`,
//! so each is its own crate using only part of it: the items some files do
//! not use carry `#[allow(dead_code)]`.

pub mod blocks;
pub mod http;
pub mod idp;
pub mod issuer_site;
pub mod replicas;
pub mod scenario;
pub mod server;
pub mod stage;
pub mod tokens;
pub mod world;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// What one run of `mandate` produced.
#[derive(Debug)]
pub struct Run {
    pub cmd: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[allow(dead_code)] // reason: each test file uses only some of these assertions.
impl Run {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success\n{self}");
        &self.stdout
    }

    /// Asserts exit 0 and returns stdout, trimmed: a token, a key, a proof.
    #[track_caller]
    pub fn ok_trimmed(&self) -> String {
        self.ok().trim().to_owned()
    }

    /// Asserts exit 1 (deny) and returns stdout.
    #[track_caller]
    pub fn denied(&self) -> &str {
        assert_eq!(self.code, 1, "expected a deny (exit 1)\n{self}");
        &self.stdout
    }

    /// Asserts exit 2 with one clear `error:` line on stderr that contains
    /// `needle`, nothing on stdout, and no cause repeated twice.
    #[track_caller]
    pub fn error(&self, needle: &str) -> &str {
        assert_eq!(self.code, 2, "expected an error (exit 2)\n{self}");
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}\n{self}"
        );
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "expected one line on stderr\n{self}"
        );
        assert!(self.stderr.starts_with("error: "), "{self}");
        assert!(self.stdout.is_empty(), "nothing on stdout on error\n{self}");
        let causes: Vec<&str> = self.stderr.trim_end().split(": ").collect();
        for pair in causes.windows(2) {
            assert_ne!(pair[0], pair[1], "a cause is printed twice\n{self}");
        }
        &self.stderr
    }

    /// Asserts a clap usage error (exit 2) whose first line contains `needle`.
    #[track_caller]
    pub fn usage_error(&self, needle: &str) {
        assert_eq!(self.code, 2, "expected a usage error (exit 2)\n{self}");
        let first = self.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{self}");
        assert!(
            first.contains(needle),
            "first line should name {needle:?}\n{self}"
        );
    }

    /// Asserts exit `code` and that stdout or stderr contains `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "expected exit {code}\n{self}");
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output should contain {needle:?}\n{self}"
        );
    }

    /// Asserts exit 0 and returns the `--json` decision, an allow.
    #[track_caller]
    pub fn allowed(&self) -> Value {
        self.ok();
        let json = self.json();
        assert_eq!(json["decision"], "allow", "{self}");
        json
    }

    /// Asserts a deny (exit 1) whose `--json` reason contains `needle`;
    /// returns the decision.
    #[track_caller]
    pub fn denied_because(&self, needle: &str) -> Value {
        self.denied();
        let json = self.json();
        assert_eq!(json["decision"], "deny", "{self}");
        let reason = json["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(needle),
            "reason should contain {needle:?}\n{self}"
        );
        json
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// The flags naming a request, as `mandate authorize` and `mandate pop`
/// take them.
#[allow(dead_code)] // reason: tests/server.rs speaks HTTP only.
pub fn request_flags<'a>(service: &'a str, operation: &'a str, resource: &'a str) -> [&'a str; 6] {
    [
        "--service",
        service,
        "--operation",
        operation,
        "--resource",
        resource,
    ]
}

/// `mandate ARGS` as every test runs it: no log filter from the caller's
/// environment, no backtraces, stdin closed.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mandate"));
    command
        .args(args)
        .env_remove("MANDATE_LOG")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    command
}

/// Runs `mandate ARGS` to completion.
#[track_caller]
pub fn mandate(args: &[&str]) -> Run {
    mandate_in(args, None)
}

/// `mandate task open --issuer ISSUER --subject-token SUBJECT --agent AGENT
/// --agent-key KEY [--right R]... EXTRA...`: an agent exchanging a login for
/// a task's mandate.
#[allow(dead_code)] // reason: only the issuer tests open tasks.
pub fn task_open(
    issuer: &str,
    subject: &str,
    agent: &str,
    key: &str,
    rights: &[&str],
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "task",
        "open",
        "--issuer",
        issuer,
        "--subject-token",
        subject,
        "--agent",
        agent,
        "--agent-key",
        key,
    ];
    for right in rights {
        args.extend(["--right", right]);
    }
    args.extend_from_slice(extra);
    mandate(&args)
}

/// The records `mandate audit ARGS --json` prints, one JSON object a line.
#[allow(dead_code)] // reason: only the audit tests read the trail.
pub fn audit_records(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.push("--json");
    mandate(&all)
        .ok()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Runs `mandate ARGS` with `stdin` as its standard input.
#[allow(dead_code)] // reason: only tests/cli.rs feeds stdin.
#[track_caller]
pub fn mandate_stdin(args: &[&str], stdin: &str) -> Run {
    mandate_in(args, Some(stdin))
}

#[track_caller]
fn mandate_in(args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = command(args);
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mandate");
    if let Some(text) = stdin {
        // The binary may stop reading early (input longer than it accepts).
        let written = child.stdin.take().unwrap().write_all(text.as_bytes());
        if let Err(e) = written {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        cmd: format!("mandate {}", shorten(&args.join(" "))),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // No input, however bad, may make the binary panic.
    assert!(
        !run.stderr.contains("panicked"),
        "the binary panicked\n{run}"
    );
    assert!(run.code >= 0, "killed by a signal\n{run}");
    run
}

/// Tokens make command lines long; keep failure messages readable.
pub fn shorten(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.chars().count() > 80 {
                format!("{}…", word.chars().take(40).collect::<String>())
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// A temporary folder of keys
// ---------------------------------------------------------------------------

/// A temporary folder, removed on drop, where `mandate keygen` writes keys.
pub struct Dir(tempfile::TempDir);

impl Dir {
    pub fn new() -> Dir {
        Dir(tempfile::tempdir().expect("tempdir"))
    }

    /// The path of `name` in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// The path of `name` in the folder, as a command-line argument.
    pub fn path(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }

    /// `mandate keygen --out NAME`: returns the public key it prints.
    #[track_caller]
    pub fn keygen(&self, name: &str) -> String {
        mandate(&["keygen", "--out", &self.path(name)]).ok_trimmed()
    }

    /// The public key `keygen` wrote to `NAME.pub`.
    #[allow(dead_code)] // reason: tests/cli.rs keeps the key `keygen` printed instead.
    pub fn public(&self, name: &str) -> String {
        let public = std::fs::read_to_string(self.file(&format!("{name}.pub"))).unwrap();
        public.trim().to_owned()
    }
}
