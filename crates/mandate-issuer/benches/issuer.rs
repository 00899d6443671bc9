//! Issuer costs: a token exchange with the provider's key set cached, and a
//! refresh, each on a sled task store (as served) and in memory, and in
//! memory with a rotated key folder (one `stat` of its manifest per key
//! use) instead of one key.
//! `cargo bench -p mandate-issuer --bench issuer`. Goals on the 2-core
//! machine: exchange ≤ 0.5 ms median, refresh ≥ 2,000/s.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mandate_core::{Proof, RootKey, SecretKey};
use mandate_issuer::idp::{IdentityProviders, IdpConfig};
use mandate_issuer::issuer::{ExchangeRequest, TaskOperation};
use mandate_issuer::jwks::JwksSource;
use mandate_issuer::keyring::KeyDir;
use mandate_issuer::policy::IssuancePolicy;
use mandate_issuer::revoke::NoRevocation;
use mandate_issuer::{
    Issuer, IssuerEvent, IssuerEvents, IssuerOptions, MemoryTaskStore, SigningKeys, SledTaskStore,
    TaskStore,
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

fn issuer(store: Arc<dyn TaskStore>, keys: SigningKeys) -> Issuer {
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
    Issuer::new(
        keys,
        idps,
        IssuancePolicy::default_policy().unwrap(),
        store,
        Arc::new(NoRevocation),
        Arc::new(Quiet),
        IssuerOptions::new("urn:bench"),
    )
}

fn one_key() -> SigningKeys {
    SigningKeys::fixed(RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    })
}

fn bench_store(c: &mut Criterion, label: &str, store: Arc<dyn TaskStore>, keys: SigningKeys) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = issuer(store, keys);
    let agent = SecretKey::generate();
    let subject = subject_token();
    let request = |actor: String| ExchangeRequest {
        subject_token: subject.clone(),
        actor_token: actor,
        rights: vec!["analytics:read".parse().unwrap()],
        audience: vec!["analytics".into()],
        description: "bench".into(),
        ttl: None,
    };
    let sign =
        || mandate_issuer::actor::sign(&agent, "helper", "urn:bench", &subject, SystemTime::now());
    // Warm the key cache (one file read), as a running issuer has.
    let first = runtime
        .block_on(issuer.exchange(&request(sign()), SystemTime::now()))
        .unwrap();

    c.bench_function(&format!("exchange, cached JWKS, {label}"), |b| {
        b.iter_batched(
            || request(sign()),
            |req| {
                runtime
                    .block_on(issuer.exchange(&req, SystemTime::now()))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    let digest = mandate_core::UnverifiedMandate::from_base64(&first.token)
        .unwrap()
        .digest_hex();
    c.bench_function(&format!("refresh, {label}"), |b| {
        b.iter_batched(
            || {
                let now = SystemTime::now();
                let req = TaskOperation::Refresh.request(&first.task, now).unwrap();
                Proof::sign(&agent, &digest, &req, now).to_text()
            },
            |proof| {
                issuer
                    .refresh(&first.task, &first.token, &proof, SystemTime::now())
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    bench_store(
        c,
        "sled",
        Arc::new(SledTaskStore::open(&dir.path().join("tasks")).unwrap()),
        one_key(),
    );
    bench_store(c, "memory", Arc::new(MemoryTaskStore::new()), one_key());
    let folder = KeyDir::new(dir.path().join("keys"));
    let now = SystemTime::now();
    folder
        .rotate(now, Duration::ZERO, Duration::from_secs(3600))
        .unwrap();
    folder
        .rotate(now, Duration::ZERO, Duration::from_secs(3600))
        .unwrap();
    bench_store(
        c,
        "memory, key folder",
        Arc::new(MemoryTaskStore::new()),
        SigningKeys::from_dir(folder, now).unwrap(),
    );
}

criterion_group! {
    name = issuer_benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(issuer_benches);
