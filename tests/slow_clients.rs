//! Slow and idle clients against the real servers (`mandate serve`, `mandate
//! registry serve`), over raw sockets: a connection that sends nothing, half a
//! request header, half the HTTP/2 preface, or nothing after a response is
//! closed within the header timeout; half a body is refused within the body
//! timeout; `/healthz` keeps answering while slow connections pile up, even
//! past the open-files limit; and an event stream outlives every timeout.
//!
//! The servers run with `MANDATE_HEADER_TIMEOUT=1s` and
//! `MANDATE_BODY_TIMEOUT=1s`, so each check waits seconds, not the defaults' 10.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::server::Server;
use common::world::World;

/// The header and body timeouts the servers run with here.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a slow connection may stay open: the first bytes and then the
/// header each get [`TIMEOUT`], plus slack for a busy machine.
const CLOSED_BY: Duration = Duration::from_secs(5);

/// The server kinds under test, with their arguments after `--store`.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `mandate serve`: the authorization API and the registry.
    Serve,
    /// `mandate registry serve`: the registry alone.
    Registry,
}

/// `mandate ARGS` for `kind` on port 0 with the short timeouts; with
/// `open_files`, under that open-files limit (soft and hard).
fn command(w: &World, kind: Kind, open_files: Option<u32>) -> Command {
    let mut args = match kind {
        Kind::Serve => vec!["serve".to_owned()],
        Kind::Registry => vec!["registry".to_owned(), "serve".to_owned()],
    };
    args.extend([
        "--store".to_owned(),
        w.path("store"),
        "--root-pub".to_owned(),
        w.root_pub_file().to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]);
    let mut command = match open_files {
        None => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::command(&args)
        }
        Some(limit) => {
            // A shell sets the limit, then becomes the server (with the
            // environment `common::command` gives it).
            let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
            let mut shell = Command::new("sh");
            shell
                .args(["-c", &script, env!("CARGO_BIN_EXE_mandate")])
                .args(&args)
                .env_remove("MANDATE_LOG")
                .env("RUST_BACKTRACE", "0");
            shell
        }
    };
    command
        .env("MANDATE_HEADER_TIMEOUT", "1s")
        .env("MANDATE_BODY_TIMEOUT", "1s")
        .stdin(std::process::Stdio::null());
    command
}

fn start(w: &World, kind: Kind, open_files: Option<u32>) -> Server {
    let name = format!("{kind:?}").to_lowercase();
    let log = w.file(&format!("{name}.log"));
    Server::spawn(&name, command(w, kind, open_files), log).unwrap_or_else(|e| panic!("{e}"))
}

/// A connection to `server` that has sent `bytes`.
fn connect(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads (and drops) whatever `stream` sends until the server closes it;
/// panics if it is still open at `deadline`. Returns when it closed.
#[track_caller]
fn closed_by(what: &str, mut stream: TcpStream, deadline: Instant) -> Instant {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: still open");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Instant::now(),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: still open after {CLOSED_BY:?}")
            }
            // Reset by the server: closed too.
            Err(_) => return Instant::now(),
        }
    }
}

/// `GET PATH` on a fresh connection within `within`: the status and body,
/// or `None` when the server did not answer in time (or refused).
fn get(server: &Server, path: &str, within: Duration) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], server.port()).into(), within).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Half of a request header, the HTTP/2 preface cut short, nothing at all,
/// and nothing after a first request answered: each connection is closed
/// within the header timeout (not at once, and not never), by both servers.
#[test]
fn idle_and_half_sent_headers_are_closed_within_the_header_timeout() {
    for kind in [Kind::Serve, Kind::Registry] {
        let w = World::new();
        let server = start(&w, kind, None);
        let opened = Instant::now();
        let half_header = connect(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        let half_preface = connect(&server, b"PRI * HTTP/2.0\r\n");
        let silent = connect(&server, b"");
        // A kept-alive connection, idle once its first request is answered.
        let mut kept = connect(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut answer = [0u8; 1024];
        kept.set_read_timeout(Some(CLOSED_BY)).unwrap();
        let n = kept.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{kind:?}: {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{kind:?}: the connection should be kept alive: {answer}"
        );
        let answered = Instant::now();

        let deadline = opened + CLOSED_BY;
        for (what, stream, since) in [
            ("half a header", half_header, opened),
            ("half the HTTP/2 preface", half_preface, opened),
            ("nothing sent", silent, opened),
            ("idle after a response", kept, answered),
        ] {
            let closed = closed_by(&format!("{kind:?}, {what}"), stream, deadline);
            let open_for = closed - since;
            assert!(
                open_for >= TIMEOUT / 2,
                "{kind:?}, {what}: closed after {open_for:?}, before the timeout"
            );
        }
        // The server is unharmed.
        assert_eq!(
            get(&server, "/healthz", CLOSED_BY).map(|reply| reply.0),
            Some(200),
            "{kind:?}"
        );
    }
}

/// A body announced longer than what is sent is refused (or the connection
/// closed) within the body timeout, on an endpoint of each server that reads
/// its body.
#[test]
fn a_half_sent_body_is_refused_within_the_body_timeout() {
    for (kind, path) in [
        (Kind::Serve, "/v1/authorize"),
        (Kind::Registry, "/v1/subscribers/ack"),
    ] {
        let w = World::new();
        let server = start(&w, kind, None);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"token\": "
        );
        let sent = Instant::now();
        let mut stream = connect(&server, head.as_bytes());
        stream.set_read_timeout(Some(CLOSED_BY)).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let answered = loop {
            match stream.read(&mut buf) {
                Ok(0) => break Instant::now(),
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    // A complete answer is enough: its status is what counts.
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break Instant::now();
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("{kind:?} {path}: no answer {CLOSED_BY:?} after half a body")
                }
                Err(_) => break Instant::now(),
            }
        };
        let waited = answered - sent;
        assert!(
            waited >= TIMEOUT / 2,
            "{kind:?} {path}: answered after {waited:?}, before the body could time out"
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{kind:?} {path}: a late body is a client error: {answer}"
        );
    }
}

/// While slow clients hold connections, `/healthz` answers at once; and when
/// they outnumber the open-files limit (the attack that first found this:
/// 300 half headers against a limit of 256), connections over the server's
/// limit are closed at once and the rest within the header timeout, so
/// `/healthz` answers again within it.
#[test]
fn health_answers_while_slow_clients_pile_up() {
    let w = World::new();
    let server = start(&w, Kind::Serve, Some(256));
    let half = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";

    let mut slow: Vec<TcpStream> = (0..50).map(|_| connect(&server, half)).collect();
    // Let the server accept them all before asking.
    thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let health = get(&server, "/healthz", CLOSED_BY);
    assert_eq!(
        health.as_ref().map(|reply| reply.0),
        Some(200),
        "{health:?}\n{}",
        server.stderr()
    );
    assert!(
        asked.elapsed() < TIMEOUT / 2,
        "/healthz took {:?} beside 50 slow connections",
        asked.elapsed()
    );

    // Past the open-files limit. A connection the server already closed may
    // refuse the rest of the write; that is fine.
    for _ in 0..300 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let _closed_already = stream.write_all(half);
        slow.push(stream);
    }
    let flooded = Instant::now();
    let answered = loop {
        if let Some((200, body)) = get(&server, "/healthz", TIMEOUT / 2) {
            assert!(body.contains("ok"), "{body}");
            break flooded.elapsed();
        }
        assert!(
            flooded.elapsed() < CLOSED_BY,
            "/healthz did not answer within {CLOSED_BY:?} of 300 slow connections\n{}",
            server.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    };
    eprintln!("/healthz answered {answered:?} after the flood");
    drop(slow);
}

/// One client address holds at most its share of the connections: the next
/// one from it is closed at once (the others are not, and the server has
/// room for other addresses), and a connection it gives back is its again.
#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let w = World::new();
    let mut command = command(&w, Kind::Serve, None);
    command.env("MANDATE_MAX_CONNECTIONS_PER_ADDRESS", "8");
    // The idle connections stay while the test looks, on a busy machine too.
    command.env("MANDATE_HEADER_TIMEOUT", "30s");
    let server = Server::spawn("serve", command, w.file("serve.log")).unwrap();
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(&server, b"")).collect();
    // Let the server accept them all before the next.
    thread::sleep(Duration::from_millis(200));
    let refused = Instant::now();
    closed_by(
        "a ninth connection from the address",
        connect(&server, b""),
        refused + TIMEOUT / 2,
    );
    assert!(
        get(&server, "/healthz", TIMEOUT / 2).is_none(),
        "a ninth answered"
    );
    // One given back: a request from the address is served again.
    drop(idle.pop());
    let (status, body) = poll_get(&server);
    assert_eq!(status, 200, "{body}");
    drop(idle);
}

/// `GET /healthz` until it answers (the server notices a closed connection
/// when it next reads it), within [`CLOSED_BY`].
fn poll_get(server: &Server) -> (u16, String) {
    let started = Instant::now();
    loop {
        if let Some(reply) = get(server, "/healthz", TIMEOUT / 2) {
            return reply;
        }
        assert!(started.elapsed() < CLOSED_BY, "/healthz never answered");
        thread::sleep(Duration::from_millis(50));
    }
}

/// An event stream (the registry's revocation stream) stays open well past
/// both timeouts, its heartbeats still arriving: only what clients send is
/// bounded, never what the server streams.
#[test]
fn an_event_stream_outlives_the_timeouts() {
    let w = World::new();
    let server = start(&w, Kind::Registry, None);
    let reader = w.bearer("dashboards", "dashboard", &["registry:read"], &[]);
    let request = format!(
        "GET /v1/revocations/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {}\r\n\r\n",
        reader.token
    );
    let mut stream = connect(&server, request.as_bytes());
    stream.set_read_timeout(Some(CLOSED_BY)).unwrap();
    let opened = Instant::now();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    // Heartbeats come every second (the registry's default); read for five
    // times the timeouts and count the ones after them.
    let mut late_heartbeats = 0;
    while opened.elapsed() < TIMEOUT * 5 {
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "the stream closed after {:?}:\n{text}\n{}",
                opened.elapsed(),
                server.stderr()
            ),
            Ok(n) => {
                let chunk = String::from_utf8_lossy(&buf[..n]);
                if opened.elapsed() > TIMEOUT * 3 {
                    late_heartbeats += chunk.matches("event: heartbeat").count();
                }
                text.push_str(&chunk);
            }
            Err(e) => panic!(
                "reading the stream after {:?}: {e}\n{text}",
                opened.elapsed()
            ),
        }
    }
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(text.contains("event: hello"), "{text}");
    assert!(
        late_heartbeats >= 1,
        "no heartbeat after {:?}:\n{text}",
        TIMEOUT * 3
    );
}
