//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use mandate_registry::{
    HttpBinding, MemoryStore, RegistryConfig, RegistryState, RevocationStore, WriteAuthorizer,
    WriteDenied,
};

/// The only token allowed to write.
pub const OPERATOR_TOKEN: &str = "operator-token";
/// A valid token that may read but not write.
pub const READER_TOKEN: &str = "reader-token";

/// Stand-in for the mandate-based authorizer: two known tokens, everything else unknown.
pub struct TestAuthorizer;

impl WriteAuthorizer for TestAuthorizer {
    fn authorize_read(
        &self,
        bearer: &str,
        _proof: Option<&str>,
        _request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        match bearer {
            OPERATOR_TOKEN | READER_TOKEN => Ok("reader".to_owned()),
            _ => Err(WriteDenied::Unauthenticated(
                "token not recognised".to_owned(),
            )),
        }
    }

    fn authorize_write(
        &self,
        bearer: &str,
        _proof: Option<&str>,
        _request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        match bearer {
            OPERATOR_TOKEN => Ok("operator".to_owned()),
            READER_TOKEN => Err(WriteDenied::Forbidden(
                "token lacks registry:revoke".to_owned(),
            )),
            _ => Err(WriteDenied::Unauthenticated(
                "token not recognised".to_owned(),
            )),
        }
    }
}

pub fn memory_state(config: RegistryConfig) -> (RegistryState, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let state = RegistryState::with_config(
        Arc::clone(&store) as Arc<dyn RevocationStore>,
        Arc::new(TestAuthorizer),
        config,
    );
    (state, store)
}

/// A Server-Sent Event as the tests see it.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: serde_json::Value,
    pub id: Option<String>,
}

/// Incremental SSE parser over an axum response body.
pub struct SseReader {
    body: axum::body::Body,
    buffer: String,
}

impl SseReader {
    pub fn new(body: axum::body::Body) -> Self {
        Self {
            body,
            buffer: String::new(),
        }
    }

    /// The next event, or a panic after `timeout` (tests must not hang).
    pub async fn next(&mut self, timeout: std::time::Duration) -> SseEvent {
        use http_body_util::BodyExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".to_owned(),
                    data: serde_json::Value::Null,
                    id: None,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim_start().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a comment or keep-alive
                }
                event.data = serde_json::from_str(&data).expect("event data is JSON");
                return event;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("timed out waiting for an SSE event")
                .expect("stream ended")
                .expect("body error");
            if let Ok(bytes) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&bytes).expect("utf-8"));
            }
        }
    }
}
