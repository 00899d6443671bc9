//! How long Mandate's HTTP servers wait on a client, and how many clients they
//! hold at once: applied to every `axum_server` server (the registry's
//! [`super::serve_app`] and `mandate-server`'s), so a client that opens
//! connections and sends nothing, half a request header or half a body cannot
//! hold a connection, a file descriptor or a handler for long.
//!
//! Only what the client sends is bounded, never what the server sends: a
//! response may stream for as long as it likes (revocation streams, audit
//! follow), and a handler may take as long as it needs (the issuer's long poll).
//!
//! - The first bytes of a connection (after the TLS handshake, if any) and every
//!   HTTP/1 request header, including the next one on an idle keep-alive
//!   connection, must arrive within [`ClientLimits::header_timeout`]; otherwise
//!   the connection is closed. Hyper times the headers; [`GuardedStream`] times
//!   the bytes before them, which decide between HTTP/1 and HTTP/2 and which
//!   hyper waits on without a timer.
//! - A request body must arrive whole within [`ClientLimits::body_timeout`] of
//!   its headers; a late body is an error to the handler reading it (axum answers
//!   400), and the connection closes.
//! - HTTP/2 connections are pinged, and closed when the peer stops answering.
//!   An HTTP/2 connection that answers pings but sends no request is not closed
//!   (hyper has no idle timeout for HTTP/2); the connection limit bounds those.
//! - At most [`ClientLimits::max_connections`] connections are open at once, and
//!   never so many that fewer than a quarter of the open-files limit (and 64) is
//!   left (its soft value is first raised to the hard one), so the store, the
//!   logs and the listener keep descriptors of their own; at most
//!   [`ClientLimits::max_per_address`] of them from one client address, so one
//!   client cannot take every slot. A connection over either limit is closed
//!   at once.
//!
//! The timeouts can be set with `MANDATE_HEADER_TIMEOUT` and `MANDATE_BODY_TIMEOUT`
//! (humantime durations, `10s`, `1500ms`) and the limits with
//! `MANDATE_MAX_CONNECTIONS` and `MANDATE_MAX_CONNECTIONS_PER_ADDRESS`; tests
//! shorten the timeouts this way.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::Router;
use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use hyper_util::rt::TokioTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// The variable that sets [`ClientLimits::header_timeout`].
pub const HEADER_TIMEOUT_ENV: &str = "MANDATE_HEADER_TIMEOUT";
/// The variable that sets [`ClientLimits::body_timeout`].
pub const BODY_TIMEOUT_ENV: &str = "MANDATE_BODY_TIMEOUT";
/// The variable that sets [`ClientLimits::max_connections`].
pub const MAX_CONNECTIONS_ENV: &str = "MANDATE_MAX_CONNECTIONS";
/// The variable that sets [`ClientLimits::max_per_address`].
pub const MAX_PER_ADDRESS_ENV: &str = "MANDATE_MAX_CONNECTIONS_PER_ADDRESS";

/// How often an HTTP/2 connection is pinged, and how long the answer may take.
const HTTP2_PING: Duration = Duration::from_secs(20);

/// What an HTTP/2 connection starts with; anything else is HTTP/1 (hyper-util's
/// `auto` server tells them apart the same way).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a server waits on a client, and how many clients it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// The time a client has to send a request's headers, counted from the
    /// connection (or, on a kept-alive connection, from the previous response);
    /// idle connections are closed after it too.
    pub header_timeout: Duration,
    /// The time a client has to send a whole request body, counted from the
    /// end of its headers.
    pub body_timeout: Duration,
    /// The most connections open at once (further capped by the open-files
    /// limit).
    pub max_connections: usize,
    /// The most connections open at once from one client address (a proxy
    /// in front of the server is one address: raise it there).
    pub max_per_address: usize,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_per_address: 1_000,
        }
    }
}

impl ClientLimits {
    /// The defaults, overridden by [`HEADER_TIMEOUT_ENV`], [`BODY_TIMEOUT_ENV`] and
    /// [`MAX_CONNECTIONS_ENV`]. A value that does not parse, or is zero, is
    /// logged and the default kept.
    pub fn from_env() -> ClientLimits {
        let defaults = ClientLimits::default();
        ClientLimits {
            header_timeout: from_env(HEADER_TIMEOUT_ENV, defaults.header_timeout, |text| {
                humantime::parse_duration(text).ok()
            }),
            body_timeout: from_env(BODY_TIMEOUT_ENV, defaults.body_timeout, |text| {
                humantime::parse_duration(text).ok()
            }),
            max_connections: from_env(MAX_CONNECTIONS_ENV, defaults.max_connections, |text| {
                text.parse().ok()
            }),
            max_per_address: from_env(MAX_PER_ADDRESS_ENV, defaults.max_per_address, |text| {
                text.parse().ok()
            }),
        }
    }

    /// `app` with every request body bounded by [`ClientLimits::body_timeout`].
    pub fn bound_bodies(&self, app: Router) -> Router {
        app.layer(axum::middleware::map_request_with_state(
            self.body_timeout,
            with_body_deadline,
        ))
    }

    /// `server` with the header timeout, HTTP/2 pings and the connection limit.
    /// Raises this process's soft open-files limit to its hard limit.
    pub fn apply<A>(
        &self,
        mut server: axum_server::Server<A>,
    ) -> axum_server::Server<GuardedAcceptor<A>> {
        server
            .http_builder()
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        server
            .http_builder()
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(HTTP2_PING)
            .keep_alive_timeout(HTTP2_PING);
        let connections = match raise_open_files_limit() {
            Some(files) => {
                // The store, the logs, the listener and outgoing connections
                // keep a quarter of the descriptors, and at least 64.
                let budget = files.saturating_sub((files / 4).max(64));
                self.max_connections
                    .min(usize::try_from(budget).unwrap_or(usize::MAX))
            }
            None => self.max_connections,
        }
        .clamp(1, Semaphore::MAX_PERMITS);
        tracing::info!(
            header_timeout = ?self.header_timeout,
            body_timeout = ?self.body_timeout,
            max_connections = connections,
            max_per_address = self.max_per_address,
            "client limits"
        );
        let slots = Arc::new(Semaphore::new(connections));
        let first_bytes = self.header_timeout;
        let addresses = AddressSlots {
            open: Arc::default(),
            most: self.max_per_address,
        };
        server.map(|inner| GuardedAcceptor {
            inner,
            slots,
            addresses,
            first_bytes,
        })
    }
}

/// `name`'s value parsed by `parse`, or `default` when unset, unparsable or zero.
fn from_env<T: PartialEq + Default + std::fmt::Debug>(
    name: &str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
) -> T {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    match parse(text.trim()) {
        Some(value) if value != T::default() => value,
        _ => {
            tracing::warn!(
                variable = name,
                value = %text,
                ?default,
                "not a positive value; using the default"
            );
            default
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the soft limit
/// in force (`None`: unlimited, or not known on this platform).
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    if limit.current != limit.maximum {
        // Refused on some platforms (macOS, for an unlimited hard limit): the
        // soft limit stays, and the connection limit follows it.
        if let Err(error) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%error, "cannot raise the open-files limit");
            return limit.current;
        }
    }
    raised.current
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

/// Replaces the request's body with one that fails once `timeout` has passed.
async fn with_body_deadline(State(timeout): State<Duration>, request: Request) -> Request {
    // Nothing to wait for (a GET, or a body that is known to be empty): no timer.
    if request.body().is_end_stream() {
        return request;
    }
    request.map(|body| {
        Body::new(DeadlineBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    })
}

/// A request body that must end before its deadline.
struct DeadlineBody {
    body: Body,
    deadline: Pin<Box<Sleep>>,
}

/// The error a [`DeadlineBody`] ends with when its deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// An acceptor (around `axum_server`'s plain or TLS one) that closes a
/// connection over the limit at once and gives every other a deadline for its
/// first bytes ([`GuardedStream`]).
#[derive(Debug, Clone)]
pub struct GuardedAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
    addresses: AddressSlots,
    first_bytes: Duration,
}

/// The connections open from each client address, at most `most` each.
#[derive(Debug, Clone)]
struct AddressSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    most: usize,
}

impl AddressSlots {
    /// One more connection from `address`, or `None` when it has the most.
    fn take(&self, address: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.most {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            address,
            open: Arc::clone(&self.open),
        })
    }
}

/// A connection's place among its address's; given back when dropped.
#[derive(Debug)]
struct AddressSlot {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

impl<A, S> Accept<TcpStream, S> for GuardedAcceptor<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = GuardedStream<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let address = match stream.peer_addr() {
            Ok(peer) => match self.addresses.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Logged at debug level only, as below.
                    tracing::debug!("connection closed: at the limit for its address");
                    return Box::pin(std::future::ready(Err(io::Error::other(
                        "at the connection limit for this address",
                    ))));
                }
            },
            // Not a connection any more; the acceptor below will say so.
            Err(_) => None,
        };
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            // Dropping `stream` closes the connection. Logged at debug level
            // only: a flood must not become a flood of log lines.
            tracing::debug!("connection closed: at the connection limit");
            return Box::pin(std::future::ready(Err(io::Error::other(
                "at the connection limit",
            ))));
        };
        // The deadline starts now, so a TLS handshake counts against it too.
        let deadline = Box::pin(tokio::time::sleep(self.first_bytes));
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let guarded = GuardedStream {
                stream,
                first_bytes: Some(FirstBytes {
                    matched: 0,
                    deadline,
                }),
                _slot: slot,
                _address: address,
            };
            Ok((guarded, service))
        })
    }
}

/// A connection holding one of the server's connection slots, whose reads fail
/// (closing it) when its first bytes do not arrive in time.
#[derive(Debug)]
pub struct GuardedStream<S> {
    stream: S,
    /// Until the first bytes tell HTTP/1 from HTTP/2: the deadline for them.
    first_bytes: Option<FirstBytes>,
    _slot: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

#[derive(Debug)]
struct FirstBytes {
    /// How many bytes so far match the HTTP/2 preface.
    matched: usize,
    deadline: Pin<Box<Sleep>>,
}

impl FirstBytes {
    /// Whether `read` (the bytes just read; empty at the end of the stream)
    /// decides the protocol: a byte off the HTTP/2 preface, or its last byte.
    fn decided_by(&mut self, read: &[u8]) -> bool {
        if read.is_empty() {
            return true;
        }
        for &byte in read {
            if HTTP2_PREFACE.get(self.matched) != Some(&byte) {
                return true;
            }
            self.matched += 1;
        }
        self.matched == HTTP2_PREFACE.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let Some(first) = &mut this.first_bytes else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                if first.decided_by(&buf.filled()[before..]) {
                    this.first_bytes = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if first.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the header timeout",
                )))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_bytes_decide_the_protocol_as_hyper_does() {
        let decides = |chunks: &[&[u8]]| {
            let mut first = FirstBytes {
                matched: 0,
                deadline: Box::pin(tokio::time::sleep(Duration::ZERO)),
            };
            chunks
                .iter()
                .map(|chunk| first.decided_by(chunk))
                .collect::<Vec<_>>()
        };
        assert_eq!(decides(&[b"G"]), [true], "HTTP/1 at the first byte");
        assert_eq!(decides(&[b"PRI * HT", b"TP/1.1"]), [false, true]);
        assert_eq!(
            decides(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"]),
            [false, true]
        );
        assert_eq!(decides(&[b"PRI", b""]), [false, true], "end of stream");
    }
}
