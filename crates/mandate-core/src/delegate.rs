//! Offline delegation: appending a block that narrows a mandate, unsigned
//! or signed by the current holder's agent key (a hop when it names the
//! next agent).
//!
//! Delegation reads the token unverified, to refuse a block that could
//! never help (a widening, a signer that is not the holder); the verifier
//! enforces every check anyway. No network, no issuer.

use biscuit_auth::builder::{self, BlockBuilder};

use crate::keys::{AgentKey, PublicKey, SecretKey};
use crate::name::check_name;
use crate::restrict::Restrictions;
use crate::token::UnverifiedMandate;
use crate::vocab;
use crate::Error;

/// The agent a signed hop hands the authority to.
#[derive(Debug, Clone)]
pub struct NextAgent {
    /// Its name.
    pub name: String,
    /// Its public key; only the holder of the matching secret key can use or
    /// pass on the delegated token.
    pub key: PublicKey,
}

/// Narrows a mandate offline: appends one unsigned block of restrictions.
///
/// Needs no key and no network, and never changes who holds the authority.
///
/// # Errors
/// [`Error::Invalid`] when `restrictions` is empty, [`Error::NotInParent`]
/// when it asks for more than the parent has, and the errors of
/// [`Restrictions::to_block`].
pub fn delegate(
    token: &UnverifiedMandate,
    restrictions: &Restrictions,
) -> Result<UnverifiedMandate, Error> {
    if restrictions.is_empty() {
        return Err(Error::Invalid(
            "nothing to delegate: give at least one restriction".into(),
        ));
    }
    // The chain and scope are read unverified: they only serve to refuse a
    // block that could never help. The verifier enforces every check anyway.
    let (effective, chain) = token.claimed()?;
    effective.check(restrictions, chain.depth())?;
    token.append(restrictions.to_block(chain.depth())?)
}

/// Appends a block signed by the current holder's key: a hop to `to` when
/// given (the next agent then holds the authority), otherwise restrictions
/// that provably come from the holder.
///
/// # Errors
/// [`Error::NotHolder`] when `signer` is not the current holder's key, and
/// the errors of [`delegate`].
pub fn delegate_signed(
    token: &UnverifiedMandate,
    signer: &SecretKey,
    to: Option<&NextAgent>,
    restrictions: &Restrictions,
) -> Result<UnverifiedMandate, Error> {
    if to.is_none() && restrictions.is_empty() {
        return Err(Error::Invalid(
            "nothing to delegate: give --to or at least one restriction".into(),
        ));
    }
    let (effective, chain) = token.claimed()?;
    let holder = chain.holder();
    if holder.key != Some(AgentKey::from(signer.public())) {
        return Err(Error::NotHolder {
            signer: signer.public().to_string(),
            holder: holder.name.clone(),
            holder_key: holder
                .key
                .map_or_else(|| "none (bearer token)".to_string(), |k| k.to_string()),
        });
    }
    let depth_after = chain.depth() + u32::from(to.is_some());
    effective.check(restrictions, depth_after)?;
    let mut block = BlockBuilder::new();
    if let Some(next) = to {
        check_name("agent name", &next.name)?;
        block = block
            .fact(builder::fact(
                vocab::HOP,
                &[
                    builder::string(&next.name),
                    builder::bytes(&next.key.to_bytes()),
                ],
            ))
            .map_err(Error::Biscuit)?;
    }
    let block = restrictions.add_to(block, depth_after)?;
    token.append_third_party(signer, block)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vocab;
    use biscuit_auth::builder as b;

    fn parent() -> UnverifiedMandate {
        let mut authority = BlockBuilder::new()
            .fact(b::fact(vocab::PRINCIPAL, &[b::string("bob")]))
            .unwrap()
            .fact(b::fact(
                vocab::AGENT,
                &[b::string("reporter"), b::bytes(&[])],
            ))
            .unwrap();
        for op in ["read", "write"] {
            authority = authority
                .fact(b::fact(
                    vocab::RIGHT,
                    &[b::string("analytics"), b::string(op)],
                ))
                .unwrap();
        }
        let token = biscuit_auth::Biscuit::builder()
            .merge(authority)
            .build(&biscuit_auth::KeyPair::new())
            .unwrap();
        UnverifiedMandate::from_base64(&token.to_base64().unwrap()).unwrap()
    }

    fn ops(op: &str) -> Restrictions {
        Restrictions {
            operations: vec![op.into()],
            ..Restrictions::default()
        }
    }

    #[test]
    fn a_parent_read_once_serves_each_delegation_and_each_child_reads_its_own_scope() {
        let parent = parent();
        let reader = delegate(&parent, &ops("read")).unwrap();
        // The parent's cached scope still holds both operations.
        let writer = delegate(&parent, &ops("write")).unwrap();
        // Each child's scope is its own: write was taken from the reader.
        assert!(matches!(
            delegate(&reader, &ops("write")),
            Err(Error::NotInParent { .. })
        ));
        assert!(matches!(
            delegate(&writer, &ops("read")),
            Err(Error::NotInParent { .. })
        ));
        // A clone carries the cached read and decides the same.
        assert!(delegate(&reader.clone(), &ops("read")).is_ok());
    }
}
