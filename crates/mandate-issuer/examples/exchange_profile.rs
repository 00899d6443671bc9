//! Runs N token exchanges (cached JWKS, memory task store) or N refreshes
//! against the bench's fixtures, for a deterministic instruction count
//! under callgrind (the machine is too noisy for wall-clock comparisons):
//!
//! ```text
//! cargo build --release -p mandate-issuer --example exchange_profile
//! valgrind --tool=callgrind --toggle-collect='*Context::enter*' \
//!     target/release/examples/exchange_profile exchange 200
//! valgrind --tool=callgrind --toggle-collect='*Issuer::refresh*' \
//!     target/release/examples/exchange_profile refresh 200
//! ```
//!
//! Only the calls named by `--toggle-collect` are counted (an exchange is an
//! async call: what the runtime runs inside `block_on` is counted); divide
//! the total by N + 1 for exchanges (the first, warming the key cache, is
//! counted too) and by N for refreshes. Actor tokens and refresh proofs are
//! signed outside those calls.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mandate_core::{Proof, RootKey, SecretKey};
use mandate_issuer::idp::{IdentityProviders, IdpConfig};
use mandate_issuer::issuer::{ExchangeRequest, TaskOperation};
use mandate_issuer::jwks::JwksSource;
use mandate_issuer::policy::IssuancePolicy;
use mandate_issuer::revoke::NoRevocation;
use mandate_issuer::{
    Issuer, IssuerEvent, IssuerEvents, IssuerOptions, MemoryTaskStore, SigningKeys,
};

struct Quiet;
impl IssuerEvents for Quiet {
    fn record(&self, _: &IssuerEvent) {}
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/idp")
        .join(name)
}

fn subject_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.test", "aud": "mandate-issuer", "sub": "alice",
        "email": "alice@example.com", "groups": ["staff"], "iat": now, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.pem")).unwrap()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "exchange".into());
    let n: usize = args.next().map_or(100, |n| n.parse().expect("a count"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idps = IdentityProviders::new(
        vec![IdpConfig {
            issuer: "https://idp.test".into(),
            audience: "mandate-issuer".into(),
            jwks: JwksSource::File(fixture("jwks.json")),
            principal_claim: "email".into(),
            groups_claim: "groups".into(),
        }],
        Duration::from_secs(30),
        Duration::from_secs(3600),
        Duration::from_secs(1),
    );
    let issuer = Issuer::new(
        SigningKeys::fixed(RootKey {
            secret: SecretKey::generate(),
            key_id: Some(1),
        }),
        idps,
        IssuancePolicy::default_policy().unwrap(),
        Arc::new(MemoryTaskStore::new()),
        Arc::new(NoRevocation),
        Arc::new(Quiet),
        IssuerOptions::new("urn:bench"),
    );
    let agent = SecretKey::generate();
    let subject = subject_token();
    let request = || ExchangeRequest {
        subject_token: subject.clone(),
        actor_token: mandate_issuer::actor::sign(
            &agent,
            "helper",
            "urn:bench",
            &subject,
            SystemTime::now(),
        ),
        rights: vec!["analytics:read".parse().unwrap()],
        audience: vec!["analytics".into()],
        description: "bench".into(),
        ttl: None,
    };
    // Warm the key cache (one file read), as a running issuer has; this
    // first exchange is counted too when profiling exchanges.
    let first = runtime
        .block_on(issuer.exchange(&request(), SystemTime::now()))
        .unwrap();

    match what.as_str() {
        "exchange" => {
            let requests: Vec<ExchangeRequest> = (0..n).map(|_| request()).collect();
            for req in &requests {
                runtime
                    .block_on(issuer.exchange(req, SystemTime::now()))
                    .unwrap();
            }
        }
        "refresh" => {
            let digest = mandate_core::UnverifiedMandate::from_base64(&first.token)
                .unwrap()
                .digest_hex();
            let proofs: Vec<String> = (0..n)
                .map(|_| {
                    let now = SystemTime::now();
                    let req = TaskOperation::Refresh.request(&first.task, now).unwrap();
                    Proof::sign(&agent, &digest, &req, now).to_text()
                })
                .collect();
            for proof in &proofs {
                issuer
                    .refresh(&first.task, &first.token, proof, SystemTime::now())
                    .unwrap();
            }
        }
        other => panic!("unknown `{other}`: exchange or refresh"),
    }
}
