//! What revocation costs a verifier per call, and how fast the registry takes durable
//! writes.
//!
//! 1. Check cost with 1,000,000 entries in force (a quarter each of token ids, principals,
//!    agents — half by name, half by key — and tasks), for a subject with 5 block
//!    revocation ids, a principal, a task and 3 agents (13 hash lookups on a miss):
//!    - `RevocationIndex::check` (the lookups alone);
//!    - `SharedIndex::check` (plus the read lock and the freshness test, with
//!      `Instant::now()` taken per call as a verifier does);
//!    - `<SharedIndex as RevocationCheck>::check`, the path `Verifier::authorize_mandate`
//!      takes on every call: it also formats each agent's key as a string.
//!
//!    Each on a miss and on hits: the first lookup (a token id), the principal, and the
//!    last lookup (the third agent's key).
//! 2. Durable write throughput, one sequential writer: `SledStore::append` (flush per
//!    append) directly, then `POST /v1/revocations` through `RegistryClient::revoke` to an
//!    in-process registry on loopback (write authorized by a real operator mandate), with a
//!    `SledStore` and, to separate the fsync from the HTTP and authorization cost, with a
//!    `MemoryStore`. Stores live under Cargo's target tmp directory, i.e. on the same disk
//!    as the build, not on a tmpfs.
//!
//! `cargo bench -p mandate-registry --bench registry`. Without `--bench` (as under
//! `cargo test --benches`) the index has 10,000 entries, criterion runs each case once and
//! the write loops do 5 writes each.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use mandate_core::{KeySet, Link, Restrictions, RootKey, SecretKey};
use mandate_issuer::MintRequest;
use mandate_registry::{
    serve, AgentRef, MandateWriteAuthorizer, MemoryStore, NewRevocation, RegistryAuth,
    RegistryClient, RegistryState, RevocationEntry, RevocationKind, RevocationStore, SharedIndex,
    SledStore, Subject,
};
use mandate_verifier::{RevocationCheck, RevocationSubject, Verifier};

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let entries = if benching { 1_000_000 } else { 10_000 };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    bench_checks(&mut c, entries);
    c.final_summary();

    let (direct, http) = if benching { (500, 300) } else { (5, 5) };
    write_throughput(direct, http);
}

// ---------------------------------------------------------------------------------------
// Check cost.

/// splitmix64: deterministic filler bytes, so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len.div_ceil(8))
            .flat_map(|_| self.next().to_le_bytes())
            .take(len)
            .collect()
    }
}

/// A block revocation id is an Ed25519 signature: 64 bytes.
const ID_LEN: usize = 64;

/// What the subjects below consist of.
struct Fixture {
    /// Not revoked.
    miss_ids: Vec<Vec<u8>>,
    /// The first id is revoked.
    hit_ids: Vec<Vec<u8>>,
    /// Three agents, none revoked.
    links: Vec<Link>,
    /// The same agents, the last one's key revoked.
    hit_links: Vec<Link>,
}

fn link(name: &str, block: usize) -> Link {
    Link::new(
        name.into(),
        Some(SecretKey::generate().public().into()),
        block,
    )
}

fn build_index(entries: usize, fixture: &Fixture) -> SharedIndex {
    let index = SharedIndex::new(Duration::from_secs(3600));
    let mut rng = Rng(0x5eed);
    let at = SystemTime::UNIX_EPOCH;
    let mut seq = 0;
    let mut push = |kind, value: String| {
        seq += 1;
        // Built directly: the filler keys are random bytes, not curve points,
        // which `NewRevocation` would refuse; the index only compares text.
        let entry = RevocationEntry {
            seq,
            kind,
            value,
            reason: String::new(),
            revoked_by: "bench".into(),
            at,
            lifted: false,
        };
        index.apply(&entry).unwrap();
    };
    // The three values the hit subjects need, then filler up to `entries`.
    push(RevocationKind::TokenId, hex::encode(&fixture.hit_ids[0]));
    push(RevocationKind::Principal, "principal-7".into());
    push(
        RevocationKind::Agent,
        fixture.hit_links[2].key.unwrap().to_string(),
    );
    for i in 3..entries {
        match i % 4 {
            0 => push(RevocationKind::TokenId, hex::encode(rng.bytes(ID_LEN))),
            1 => push(RevocationKind::Principal, format!("principal-{i}")),
            2 if i % 8 == 2 => push(RevocationKind::Agent, format!("agent-{i}")),
            2 => push(
                RevocationKind::Agent,
                format!("ed25519/{}", hex::encode(rng.bytes(32))),
            ),
            _ => push(RevocationKind::Task, format!("task-{i}")),
        }
    }
    index.mark_fresh(Instant::now());
    index
}

fn bench_checks(c: &mut Criterion, entries: usize) {
    let mut rng = Rng(0xface);
    let links = vec![
        link("orchestrator", 0),
        link("analytics", 1),
        link("charting", 2),
    ];
    let mut hit_links = links.clone();
    hit_links[2] = link("charting", 2);
    let fixture = Fixture {
        miss_ids: (0..5).map(|_| rng.bytes(ID_LEN)).collect(),
        hit_ids: (0..5).map(|_| rng.bytes(ID_LEN)).collect(),
        links,
        hit_links,
    };

    let started = Instant::now();
    let index = build_index(entries, &fixture);
    eprintln!(
        "index: {} revocations in force, built in {:.1?}",
        index.with_index(|i| i.active_len()),
        started.elapsed()
    );

    let key_strings = |links: &[Link]| -> Vec<String> {
        links.iter().map(|l| l.key.unwrap().to_string()).collect()
    };
    let miss_keys = key_strings(&fixture.links);
    let hit_keys = key_strings(&fixture.hit_links);
    let agent_refs = |links: &'static [Link], keys: &'static [String]| -> Vec<AgentRef<'static>> {
        links
            .iter()
            .zip(keys)
            .map(|(l, k)| AgentRef {
                name: &l.name,
                public_key: k,
            })
            .collect()
    };
    // Leaked so the subjects can borrow them for the whole run; this is a benchmark binary.
    let fixture: &'static Fixture = Box::leak(Box::new(fixture));
    let miss_keys: &'static [String] = Box::leak(miss_keys.into_boxed_slice());
    let hit_keys: &'static [String] = Box::leak(hit_keys.into_boxed_slice());
    let miss_agents = agent_refs(&fixture.links, miss_keys);
    let hit_agents = agent_refs(&fixture.hit_links, hit_keys);

    let subject = |ids: &'static [Vec<u8>], principal, agents| Subject {
        revocation_ids: ids,
        principal,
        task: "task-q3",
        agents,
    };
    let cases: [(&str, Subject<'_>); 4] = [
        ("miss", subject(&fixture.miss_ids, "bob", &miss_agents)),
        (
            "hit_token_id",
            subject(&fixture.hit_ids, "bob", &miss_agents),
        ),
        (
            "hit_principal",
            subject(&fixture.miss_ids, "principal-7", &miss_agents),
        ),
        (
            "hit_agent_key_last",
            subject(&fixture.miss_ids, "bob", &hit_agents),
        ),
    ];
    // Sanity: each case decides as its name says.
    for (name, s) in &cases {
        let revoked = index.check(s, Instant::now()).is_err();
        assert_eq!(revoked, *name != "miss", "{name}");
    }

    let label = format!("{}k", entries / 1000);
    let mut group = c.benchmark_group(format!("RevocationIndex::check/{label}"));
    index.with_index(|idx| {
        for (name, s) in &cases {
            group.bench_function(*name, |b| b.iter(|| idx.check(black_box(s)).is_some()));
        }
    });
    group.finish();

    let mut group = c.benchmark_group(format!("SharedIndex::check/{label}"));
    for (name, s) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| index.check(black_box(s), Instant::now()).is_err())
        });
    }
    group.finish();

    let verifier_cases = [
        ("miss", &fixture.miss_ids, "bob", &fixture.links),
        ("hit_token_id", &fixture.hit_ids, "bob", &fixture.links),
        (
            "hit_principal",
            &fixture.miss_ids,
            "principal-7",
            &fixture.links,
        ),
        (
            "hit_agent_key_last",
            &fixture.miss_ids,
            "bob",
            &fixture.hit_links,
        ),
    ];
    let check: &dyn RevocationCheck = &index;
    let mut group = c.benchmark_group(format!("RevocationCheck::check/{label}"));
    for (name, ids, principal, links) in verifier_cases {
        let s = RevocationSubject {
            revocation_ids: ids,
            principal,
            task: "task-q3",
            agents: links,
        };
        assert_eq!(check.check(&s).is_err(), name != "miss", "{name}");
        group.bench_function(name, |b| b.iter(|| check.check(black_box(&s)).is_err()));
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------
// Durable write throughput.

struct Throughput {
    path: &'static str,
    latencies: Vec<Duration>,
    total: Duration,
}

fn write_throughput(direct: usize, http: usize) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut rows = Vec::new();

    let store = SledStore::open(&tmp.path().join("direct")).unwrap();
    rows.push(timed("SledStore::append (flush per append)", direct, |i| {
        let new =
            NewRevocation::revoke(RevocationKind::Principal, format!("d{i}"), "", "bench").unwrap();
        store.append(new).unwrap();
    }));
    drop(store);

    let secret = SecretKey::generate();
    let root_public = secret.public();
    let root = RootKey {
        secret,
        key_id: Some(1),
    };
    // Keyed, as the registry requires by default: each write signs a proof bound to it.
    let operator_key = SecretKey::generate();
    let operator = mandate_issuer::mint(
        &root,
        &MintRequest {
            principal: "operator".into(),
            agent: "ops-console".into(),
            agent_key: Some(operator_key.public()),
            task: Some("bench".into()),
            rights: vec!["registry:revoke".parse().unwrap()],
            ttl: Duration::from_secs(3600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_base64()
    .unwrap();
    let operator = RegistryAuth::keyed(operator, operator_key).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stores: [(&'static str, Arc<dyn RevocationStore>); 2] = [
        (
            "HTTP revoke → registry, SledStore",
            Arc::new(SledStore::open(&tmp.path().join("http")).unwrap()),
        ),
        (
            "HTTP revoke → registry, MemoryStore",
            Arc::new(MemoryStore::new()),
        ),
    ];
    for (path, store) in stores {
        let authorizer =
            MandateWriteAuthorizer::new(Verifier::builder().root_keys(KeySet::single(root_public)))
                .unwrap();
        let state = RegistryState::new(store, Arc::new(authorizer));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        let client = RegistryClient::new(&url).unwrap();
        rows.push(timed(path, http, |i| {
            runtime
                .block_on(client.revoke(&operator, RevocationKind::Principal, &format!("h{i}"), ""))
                .unwrap();
        }));
        let _ = stop.send(());
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(15), server).await })
            .expect("registry shut down in time")
            .unwrap()
            .unwrap();
    }

    println!();
    println!(
        "durable write throughput, one sequential writer (store under {})",
        env!("CARGO_TARGET_TMPDIR")
    );
    println!(
        "  {:<40} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "path", "writes", "writes/s", "p50 ms", "p99 ms", "max ms"
    );
    for row in rows {
        let mut sorted = row.latencies.clone();
        sorted.sort_unstable();
        let pct = |q: f64| {
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
        };
        println!(
            "  {:<40} {:>7} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
            row.path,
            sorted.len(),
            sorted.len() as f64 / row.total.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            sorted.last().unwrap().as_secs_f64() * 1e3,
        );
    }
}

fn timed(path: &'static str, writes: usize, mut write: impl FnMut(usize)) -> Throughput {
    let mut latencies = Vec::with_capacity(writes);
    let started = Instant::now();
    for i in 0..writes {
        let t = Instant::now();
        write(i);
        latencies.push(t.elapsed());
    }
    Throughput {
        path,
        latencies,
        total: started.elapsed(),
    }
}
