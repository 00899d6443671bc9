//! A local identity provider for black-box tests of the issuer: its key
//! set served on 127.0.0.1 (swappable, for rotation) and identity tokens
//! signed with the RS256, ES256 and EdDSA test keys in `tests/fixtures/idp/`.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The provider's `iss`.
pub const IDP: &str = "https://idp.test";
/// The `aud` its tokens carry for the issuer.
pub const AUDIENCE: &str = "mandate-issuer";
/// The issuer's identifier, which actor tokens name.
pub const ISSUER_ID: &str = "urn:test:mandate-issuer";

/// A file of `tests/fixtures/idp/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/idp")
        .join(name)
}

/// Now, in seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A test identity provider's key set on 127.0.0.1, swappable for rotation.
pub struct Jwks {
    pub url: String,
    body: Arc<Mutex<String>>,
}

impl Jwks {
    /// Serves the fixture key set `file`.
    pub fn serve(file: &str) -> Jwks {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let body = Arc::new(Mutex::new(std::fs::read_to_string(fixture(file)).unwrap()));
        let shared = body.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let body = shared.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Jwks { url, body }
    }

    /// Serves the fixture key set `file` from now on.
    pub fn rotate_to(&self, file: &str) {
        *self.body.lock().unwrap() = std::fs::read_to_string(fixture(file)).unwrap();
    }

    /// The issuer's `--idp` flag trusting this provider.
    pub fn flag(&self) -> String {
        format!("{IDP},{AUDIENCE},{}", self.url)
    }
}

/// Signs an identity token with a fixture key.
pub fn id_token(alg: Algorithm, key_file: &str, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A new id for every login of this process.
fn login_id() -> String {
    static LOGINS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = LOGINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("login-{}-{n}", std::process::id())
}

/// Claims of a valid identity token for `email` in `groups`.
pub fn claims(email: &str, groups: &[&str]) -> Value {
    json!({
        "iss": IDP, "aud": AUDIENCE, "sub": format!("sub-{email}"), "email": email,
        "groups": groups, "iat": now(), "exp": now() + 600,
        // Each sign-in is its own token, as with a real provider: an
        // identity token handed to an agent never approves anything.
        "jti": login_id(),
    })
}

/// Sleeps into the next whole second: an identity token signed after this
/// has an `iat` later than anything that happened before the call, as an
/// approval needs (a sign-in from a later second than the request).
pub fn next_second() {
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(std::time::Duration::from_nanos(
        1_000_000_000 - u64::from(into) + 5_000_000,
    ));
}

/// A person's own sign-in to approve with: after [`next_second`].
pub fn fresh_login(email: &str, groups: &[&str]) -> String {
    next_second();
    login(email, groups)
}

/// A valid RS256 identity token for `email` in `groups`.
pub fn login(email: &str, groups: &[&str]) -> String {
    id_token(Algorithm::RS256, "rsa.pem", "rsa-1", &claims(email, groups))
}
