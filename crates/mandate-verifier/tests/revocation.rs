//! The verifier consults its revocation check on every call, including for
//! a token it verified and cached before, and `revalidate` stops a call in
//! flight.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mandate_core::{KeySet, Request, ResourcePath, Restrictions, RootKey, SecretKey};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Reason, RevocationCheck, RevocationDenial, RevocationSubject, Verifier};

/// Revokes one principal once told to; can also play "stale".
#[derive(Debug, Default)]
struct Switch {
    revoked_principal: Mutex<Option<String>>,
    stale: Mutex<bool>,
}

impl RevocationCheck for Switch {
    fn check(&self, subject: &RevocationSubject<'_>) -> Result<(), RevocationDenial> {
        if *self.stale.lock().unwrap() {
            return Err(RevocationDenial::Stale {
                detail: "no heartbeat for 6s (bound 5s)".into(),
            });
        }
        match self.revoked_principal.lock().unwrap().as_deref() {
            Some(p) if p == subject.principal => Err(RevocationDenial::Revoked {
                kind: "principal".into(),
                value: p.into(),
                seq: 7,
                reason: "kill switch".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn setup() -> (Verifier, Arc<Switch>, String) {
    let root = SecretKey::generate();
    let public = root.public();
    let token = mint(
        &RootKey {
            secret: root,
            key_id: None,
        },
        &MintRequest {
            principal: "bob".into(),
            agent: "reporter".into(),
            agent_key: None,
            task: Some("q3".into()),
            rights: vec!["reports:read".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_base64()
    .unwrap();
    let switch = Arc::new(Switch::default());
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(public))
        .revocation(switch.clone())
        .build()
        .unwrap();
    (verifier, switch, token)
}

fn read() -> Request {
    Request::new(
        "reports",
        "read",
        ResourcePath::parse("/q3").unwrap(),
        SystemTime::now(),
    )
}

#[test]
fn a_cached_token_is_denied_on_its_next_call_after_revocation() {
    let (verifier, switch, token) = setup();
    assert!(verifier.authorize(&token, &read()).unwrap().allowed);
    *switch.revoked_principal.lock().unwrap() = Some("bob".into());
    let denied = verifier.authorize(&token, &read()).unwrap();
    assert!(!denied.allowed);
    assert!(
        matches!(denied.reason, Reason::Revoked { .. }),
        "{:?}",
        denied.reason
    );
    assert_eq!(
        denied.reason.to_string(),
        "revoked: principal bob (revocation #7: kill switch)"
    );
    assert_eq!(denied.principal, "bob");
}

#[test]
fn revalidate_stops_a_call_in_flight_and_stale_state_fails_closed() {
    let (verifier, switch, token) = setup();
    let mandate = verifier.verify(&token).unwrap();
    assert!(
        verifier
            .authorize_mandate(&mandate, &read())
            .unwrap()
            .allowed
    );
    assert_eq!(verifier.revalidate(&mandate), Ok(()));
    *switch.stale.lock().unwrap() = true;
    let stale = verifier.authorize_mandate(&mandate, &read()).unwrap();
    assert!(!stale.allowed);
    assert!(
        stale
            .reason
            .to_string()
            .starts_with("revocation state stale"),
        "{}",
        stale.reason
    );
    *switch.stale.lock().unwrap() = false;
    *switch.revoked_principal.lock().unwrap() = Some("bob".into());
    assert!(matches!(
        verifier.revalidate(&mandate),
        Err(RevocationDenial::Revoked { seq: 7, .. })
    ));
}
