//! The effective scope of a token: what it still allows after every block's
//! structured restrictions, read from the checks themselves
//! (`narrowing.rs`): the rights, then every recognised check on
//! operations, services, expiry and delegation depth, in any block.
//!
//! Read unverified, it serves only to refuse a delegation that would widen
//! (or could never help); it never decides a request — the verifier
//! evaluates every check, recognised or not.

use std::collections::BTreeSet;
use std::time::SystemTime;

use crate::authority::AuthorityClaims;
use crate::blocks::BlockContents;
use crate::narrowing::Narrowing;
use crate::restrict::{Restrictions, Right};
use crate::Error;

/// What a token allows after every block, as far as its structured
/// restrictions say. Read unverified: it serves to refuse a delegation that
/// would widen (or could never help), never to decide a request.
#[derive(Debug, Clone)]
pub(crate) struct Effective {
    rights: Vec<Right>,
    operations: Option<BTreeSet<String>>,
    services: Option<BTreeSet<String>>,
    expires_at: Option<SystemTime>,
    max_depth: Option<i64>,
}

/// The expiry that applies after every block's `--ttl`, read unverified
/// (for reports only).
pub(crate) fn effective_expiry(
    claims: &AuthorityClaims,
    blocks: &[BlockContents],
) -> Option<SystemTime> {
    Effective::read(claims, blocks).expires_at
}

impl Effective {
    pub(crate) fn read(claims: &AuthorityClaims, blocks: &[BlockContents]) -> Effective {
        let mut effective = Effective {
            rights: claims.rights.clone(),
            operations: None,
            services: None,
            expires_at: claims.expires_at,
            max_depth: None,
        };
        for narrowing in blocks.iter().flat_map(|b| &b.narrowings) {
            match narrowing {
                Narrowing::Operations(values) => narrow(&mut effective.operations, values),
                Narrowing::Services(values) => narrow(&mut effective.services, values),
                Narrowing::ExpiresAt(at) => {
                    let at = std::time::UNIX_EPOCH
                        .checked_add(std::time::Duration::from_secs(*at))
                        .unwrap_or(std::time::UNIX_EPOCH);
                    effective.expires_at = Some(effective.expires_at.map_or(at, |e| e.min(at)));
                }
                Narrowing::MaxDepth(n) => {
                    effective.max_depth = Some(effective.max_depth.map_or(*n, |m| m.min(*n)));
                }
            }
        }
        effective
    }

    fn allows_service(&self, service: &str) -> bool {
        self.rights.iter().any(|r| r.service == service)
            && self.services.as_ref().is_none_or(|s| s.contains(service))
    }

    fn allows_operation(&self, operation: &str, services: &[String]) -> bool {
        self.rights.iter().any(|r| {
            r.operation == operation
                && (services.is_empty() || services.contains(&r.service))
                && self.allows_service(&r.service)
        }) && self
            .operations
            .as_ref()
            .is_none_or(|o| o.contains(operation))
    }

    fn describe(&self) -> String {
        let rights: Vec<String> = self
            .rights
            .iter()
            .filter(|r| {
                self.allows_service(&r.service)
                    && self
                        .operations
                        .as_ref()
                        .is_none_or(|o| o.contains(&r.operation))
            })
            .map(Right::to_string)
            .collect();
        if rights.is_empty() {
            "nothing".into()
        } else {
            rights.join(", ")
        }
    }

    /// Refuses restrictions that ask for more than the token has, or that
    /// would let the chain grow past an earlier depth limit.
    pub(crate) fn check(&self, asked: &Restrictions, depth_after: u32) -> Result<(), Error> {
        for service in &asked.services {
            if !self.allows_service(service) {
                return Err(Error::NotInParent {
                    requested: format!("service `{service}`"),
                    allowed: self.describe(),
                });
            }
        }
        for operation in &asked.operations {
            if !self.allows_operation(operation, &asked.services) {
                return Err(Error::NotInParent {
                    requested: format!("operation `{operation}`"),
                    allowed: self.describe(),
                });
            }
        }
        let rfc3339 = crate::print::rfc3339;
        if let (Some(asked), Some(parent)) = (asked.expires_at, self.expires_at) {
            if asked > parent {
                return Err(Error::NotInParent {
                    requested: format!("expiry {}", rfc3339(asked)),
                    allowed: format!("an expiry no later than {}", rfc3339(parent)),
                });
            }
        }
        if let Some(max) = self.max_depth {
            if i64::from(depth_after) > max {
                return Err(Error::NotInParent {
                    requested: format!("delegation depth {depth_after}"),
                    allowed: format!("a depth of at most {max}"),
                });
            }
            if let Some(further) = asked.max_depth {
                let asked_abs = i64::from(depth_after) + i64::from(further);
                if asked_abs > max {
                    return Err(Error::NotInParent {
                        requested: format!("--max-depth {further} (depth {asked_abs})"),
                        allowed: format!("a depth of at most {max}"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Keeps in `slot` only what `values` also allows.
fn narrow(slot: &mut Option<BTreeSet<String>>, values: &BTreeSet<String>) {
    *slot = Some(match slot.take() {
        Some(prev) => prev.intersection(values).cloned().collect(),
        None => values.clone(),
    });
}

/// Refuses restrictions minted into a new mandate that name an operation or
/// service outside `rights`, or an expiry after `expires_at`: such a mandate
/// could never be used as asked.
///
/// # Errors
/// [`Error::NotInParent`] naming what the rights allow.
pub fn check_within_rights(
    restrictions: &Restrictions,
    rights: &[Right],
    expires_at: SystemTime,
) -> Result<(), Error> {
    let effective = Effective {
        rights: rights.to_vec(),
        operations: None,
        services: None,
        expires_at: Some(expires_at),
        max_depth: None,
    };
    effective.check(restrictions, 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::blocks::{read_all, Detail};
    use crate::vocab;
    use biscuit_auth::builder::{self as b, BlockBuilder};

    /// Compiles `restrictions` into an unsigned block after an authority
    /// block granting `rights`, and reads the effective scope back.
    fn scope_after(rights: &[&str], restrictions: &[Restrictions]) -> Effective {
        let mut authority = BlockBuilder::new();
        for right in rights {
            let right: Right = right.parse().unwrap();
            authority = authority
                .fact(b::fact(
                    vocab::RIGHT,
                    &[b::string(&right.service), b::string(&right.operation)],
                ))
                .unwrap();
        }
        let mut token = biscuit_auth::Biscuit::builder()
            .merge(authority)
            .build(&biscuit_auth::KeyPair::new())
            .unwrap();
        for r in restrictions {
            token = token.append(r.to_block(0).unwrap()).unwrap();
        }
        let blocks = read_all(&token.container().to_proto(), Detail::Scope).unwrap();
        let claims = AuthorityClaims::from_facts(&blocks[0].facts);
        Effective::read(&claims, &blocks)
    }

    fn ops(list: &[&str]) -> Restrictions {
        Restrictions {
            operations: list.iter().map(|s| s.to_string()).collect(),
            ..Restrictions::default()
        }
    }

    #[test]
    fn restrictions_compile_to_checks_the_scope_reads_back() {
        let scope = scope_after(
            &["data:read", "data:write", "data:delete"],
            &[ops(&["read", "write"]), ops(&["read", "delete"])],
        );
        // Each block narrows: only the intersection is left.
        assert_eq!(scope.operations, Some(BTreeSet::from(["read".to_string()])));
        assert!(scope.check(&ops(&["read"]), 0).is_ok());
        assert!(matches!(
            scope.check(&ops(&["write"]), 0),
            Err(Error::NotInParent { .. })
        ));
    }

    #[test]
    fn one_value_or_several_narrow_alike() {
        let services = |list: &[&str]| Restrictions {
            services: list.iter().map(|s| s.to_string()).collect(),
            ..Restrictions::default()
        };
        let scope = scope_after(
            &["a:read", "b:read", "c:read"],
            &[services(&["a", "b"]), services(&["b"])],
        );
        assert_eq!(scope.services, Some(BTreeSet::from(["b".to_string()])));
        assert!(scope.check(&services(&["b"]), 0).is_ok());
        assert!(scope.check(&services(&["a"]), 0).is_err());
    }

    #[test]
    fn a_raw_check_narrows_when_it_has_a_compiled_form() {
        let raw = |check: &str| Restrictions {
            checks: vec![check.to_string()],
            ..Restrictions::default()
        };
        let scope = scope_after(
            &["data:read", "data:write"],
            &[raw(r#"check if operation("read")"#)],
        );
        assert!(scope.check(&ops(&["write"]), 0).is_err());
        // Another shape narrows nothing here (the verifier enforces it).
        let scope = scope_after(
            &["data:read", "data:write"],
            &[raw(r#"check if operation($o), $o == "read""#)],
        );
        assert_eq!(scope.operations, None);
        assert!(scope.check(&ops(&["write"]), 0).is_ok());
    }

    #[test]
    fn a_later_expiry_or_a_deeper_chain_is_refused() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let first = Restrictions {
            expires_at: Some(now),
            max_depth: Some(1),
            ..Restrictions::default()
        };
        let scope = scope_after(&["data:read"], &[first]);
        let later = Restrictions {
            expires_at: Some(now + std::time::Duration::from_secs(1)),
            ..Restrictions::default()
        };
        assert!(matches!(
            scope.check(&later, 0),
            Err(Error::NotInParent { .. })
        ));
        assert!(matches!(
            scope.check(&Restrictions::default(), 2),
            Err(Error::NotInParent { .. })
        ));
        assert!(scope.check(&Restrictions::default(), 1).is_ok());
    }
}
