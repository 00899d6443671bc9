//! HTTP for black-box tests: a JSON answer with assertions on the decision
//! or the one error shape, a plain request, the authorization API's `POST`,
//! and a raw socket `POST` for bodies a server refuses before reading them.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// An HTTP answer whose body is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_allowed(&self) {
        assert_eq!(self.status, 200, "expected allow: {}", self.body);
        assert_eq!(self.body["decision"], "allow", "{}", self.body);
        assert!(self.reason().starts_with("allowed by"), "{}", self.body);
    }

    /// Asserts 403 deny whose reason contains `needle`.
    #[track_caller]
    pub fn assert_denied(&self, needle: &str) {
        assert_eq!(self.status, 403, "expected deny: {}", self.body);
        assert_eq!(self.body["decision"], "deny", "{}", self.body);
        assert!(
            self.reason().contains(needle),
            "reason should contain {needle:?}: {}",
            self.body
        );
    }

    /// Asserts an RFC 6749 §5.2 refusal with `status` and `code`.
    #[track_caller]
    pub fn assert_oauth(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        assert!(self.body["error_description"].is_string(), "{}", self.body);
    }

    /// Asserts the one error shape with `status` and `code`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, needle: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.error_code(), code, "{}", self.body);
        assert!(
            self.error_message().contains(needle),
            "message should contain {needle:?}: {}",
            self.body
        );
    }
}

/// The `Content-Type` of a JSON body.
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

pub fn http(method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("read body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url} → {status}: body is not JSON ({e}): {text:?}"));
    Reply { status, body }
}

/// `POST` to `url` over a plain socket, for bodies the server refuses
/// before reading them whole: it answers and closes while the client is
/// still writing, which an HTTP client reports as a broken pipe instead of
/// the answer. Here write errors are ignored and the answer is read anyway.
pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (addr, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _refused_midway = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
    let mut response = Vec::new();
    // A reset after the answer ends the read with an error; what came before counts.
    let _reset = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (head, text) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let body = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("POST {url} → {status}: body is not JSON ({e}): {text:?}"));
    Reply { status, body }
}

/// `POST {base}/v1/authorize` with a JSON `body`.
pub fn post(base: &str, body: &str) -> Reply {
    http("POST", &format!("{base}/v1/authorize"), Some(body), &[JSON])
}
