//! Mandate tokens before and after their root signature is checked.
//!
//! [`UnverifiedMandate`] is what arrives on the wire: it can be inspected
//! (as an explicitly unverified report), attenuated offline and re-encoded,
//! but it offers no accessor for a principal, an agent or a right.
//! [`Mandate`] exists only after [`UnverifiedMandate::verify`] or
//! [`Mandate::from_base64`] checked every signature against a trusted root,
//! or after [`Mandate::sign`] signed a new one; it remembers that root.

use std::sync::OnceLock;

use biscuit_auth::{Biscuit, UnverifiedBiscuit};
use sha2::Digest as _;

use crate::blocks::{BlockContents, Detail};
use crate::chain::{self, Chain, ChainError};
use crate::claims::Claims;
use crate::keys::{KeySet, PublicKey};
use crate::scope::Effective;
use crate::Error;

/// The largest encoded token accepted, in bytes. Biscuit tokens with dozens
/// of hops stay far below this; the bound keeps hostile input cheap to refuse.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A short, stable, non-reversible name for a token, safe for logs:
/// `sha256:` and the first 16 hex digits of the SHA-256 of its text.
pub fn fingerprint(token_text: &str) -> String {
    let digest = sha2::Sha256::digest(token_text.trim().as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..16])
}

/// Whitespace accepted around a token read from a file or a stream.
const SURROUNDING_SPACE: usize = 4096;

/// Reads a token's text from `reader` (a token file, stdin): at most
/// [`MAX_TOKEN_LEN`] bytes and some surrounding whitespace. Anything longer
/// is refused after reading only that much, so a token argument naming
/// `/dev/zero` or a huge file costs nothing.
///
/// # Errors
/// The reader's own errors; [`std::io::ErrorKind::InvalidData`] for text
/// that is not UTF-8 or is longer than a token can be.
pub fn read_token_text(reader: impl std::io::Read) -> std::io::Result<String> {
    use crate::text_file::{read_bounded, TooLong};
    read_bounded(reader, MAX_TOKEN_LEN + SURROUNDING_SPACE).map_err(|error| {
        // The whitespace allowed around a token is not part of its length.
        match TooLong::in_error(&error) {
            Some(_) => std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                TooLong { max: MAX_TOKEN_LEN },
            ),
            None => error,
        }
    })
}

fn check_len(text: &str) -> Result<&str, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::MalformedToken {
            reason: "empty token".into(),
        });
    }
    if text.len() > MAX_TOKEN_LEN {
        return Err(Error::MalformedToken {
            reason: format!("longer than {MAX_TOKEN_LEN} bytes"),
        });
    }
    Ok(text)
}

/// A token whose bytes parsed but whose signatures were not checked.
#[derive(Clone)]
pub struct UnverifiedMandate {
    inner: UnverifiedBiscuit,
    /// The scope and chain the token claims, read from its blocks on first
    /// use: an agent delegating several times from one parent reads it once.
    claimed: OnceLock<(Effective, Chain)>,
}

impl std::fmt::Debug for UnverifiedMandate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnverifiedMandate(id: {})", self.token_id_hex())
    }
}

impl UnverifiedMandate {
    fn new(inner: UnverifiedBiscuit) -> UnverifiedMandate {
        UnverifiedMandate {
            inner,
            claimed: OnceLock::new(),
        }
    }

    /// The scope and chain the token claims (unverified), read once.
    ///
    /// # Errors
    /// [`Error::MalformedToken`] when a block cannot be read,
    /// [`Error::Chain`] when the chain is not well formed.
    pub(crate) fn claimed(&self) -> Result<&(Effective, Chain), Error> {
        if let Some(claimed) = self.claimed.get() {
            return Ok(claimed);
        }
        let blocks = self.blocks()?;
        let (claims, chain) = chain::read(&blocks);
        let chain = chain.map_err(Error::Chain)?;
        let read = (Effective::read(&claims, &blocks), chain);
        Ok(self.claimed.get_or_init(|| read))
    }

    /// Parses URL-safe base64 text (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`Error::MalformedToken`] for bad base64, truncated or garbled bytes.
    pub fn from_base64(text: &str) -> Result<UnverifiedMandate, Error> {
        let text = check_len(text)?;
        UnverifiedBiscuit::from_base64(text)
            .map(UnverifiedMandate::new)
            .map_err(Error::from_format)
    }

    /// Encodes the token as URL-safe base64.
    ///
    /// # Errors
    /// [`Error::Biscuit`] if serialisation fails.
    pub fn to_base64(&self) -> Result<String, Error> {
        self.inner.to_base64().map_err(Error::Biscuit)
    }

    /// Checks every signature against the trusted root keys.
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] when no trusted key has the token's key id,
    /// [`Error::InvalidSignature`] when a signature does not verify.
    pub fn verify(&self, keys: &KeySet) -> Result<Mandate, Error> {
        self.clone().into_verified(keys)
    }

    /// As [`UnverifiedMandate::verify`], consuming the token (no copy).
    ///
    /// # Errors
    /// As [`UnverifiedMandate::verify`].
    pub fn into_verified(self, keys: &KeySet) -> Result<Mandate, Error> {
        let root = *keys.choose(self.inner.root_key_id())?;
        self.inner
            .verify(*root.as_biscuit())
            .map(|biscuit| Mandate { biscuit, root })
            .map_err(|e| Error::from_format(e.into()))
    }

    /// The root key id the token names, if any.
    pub fn root_key_id(&self) -> Option<u32> {
        self.inner.root_key_id()
    }

    /// Number of blocks, the authority block included.
    pub fn block_count(&self) -> usize {
        self.inner.block_count()
    }

    /// Every block's revocation id, authority first.
    pub fn revocation_ids(&self) -> Vec<Vec<u8>> {
        self.inner.revocation_identifiers()
    }

    /// The token id: the last block's revocation id, in hex.
    pub fn token_id_hex(&self) -> String {
        last_hex(&self.revocation_ids())
    }

    /// A digest of every block's signature, identifying the whole token;
    /// what a proof of possession signs (see [`Mandate::digest_hex`]).
    pub fn digest_hex(&self) -> String {
        digest_hex(&self.revocation_ids())
    }

    /// The root id: the authority block's revocation id, in hex. Every token
    /// delegated from the same minted mandate shares it.
    pub fn root_id_hex(&self) -> String {
        self.revocation_ids()
            .first()
            .map(hex::encode)
            .unwrap_or_default()
    }

    /// Block `index` as escaped Datalog, for display only (never parse it).
    ///
    /// # Errors
    /// [`Error::MalformedToken`] when the blocks cannot be read or `index`
    /// is past the last block.
    pub fn block_source(&self, index: usize) -> Result<String, Error> {
        self.blocks_with_text()?
            .into_iter()
            .nth(index)
            .map(|b| b.source)
            .ok_or_else(|| Error::MalformedToken {
                reason: format!("no block {index}"),
            })
    }

    /// For each block, the key that signed it as a third-party block, if any.
    pub fn external_keys(&self) -> Vec<Option<PublicKey>> {
        let external = self.inner.external_public_keys();
        (0..external.len())
            .map(|i| signer_of(&external, i))
            .collect()
    }

    /// The chain the token claims. Not verified: use it to prepare a hop,
    /// never to decide a request.
    ///
    /// # Errors
    /// [`ChainError`] when a hop is unsigned, signed by the wrong key,
    /// malformed, or the blocks cannot be read.
    pub fn claimed_chain(&self) -> Result<Chain, ChainError> {
        let blocks = self
            .read_blocks(Detail::Scope)
            .map_err(ChainError::Unreadable)?;
        chain::read(&blocks).1
    }

    /// Every block, read once as far as a delegation needs (facts, signers,
    /// what checks narrow). Unverified: for preparing a delegation, never
    /// for deciding a request.
    ///
    /// # Errors
    /// [`Error::MalformedToken`] naming a block that cannot be read.
    pub(crate) fn blocks(&self) -> Result<Vec<BlockContents>, Error> {
        self.read_blocks(Detail::Scope)
            .map_err(|e| Error::MalformedToken {
                reason: e.to_string(),
            })
    }

    /// Every block with its display text, for reports.
    ///
    /// # Errors
    /// [`Error::MalformedToken`] naming a block that cannot be read.
    pub(crate) fn blocks_with_text(&self) -> Result<Vec<BlockContents>, Error> {
        self.read_blocks(Detail::Text)
            .map_err(|e| Error::MalformedToken {
                reason: e.to_string(),
            })
    }

    fn read_blocks(&self, detail: Detail) -> Result<Vec<BlockContents>, crate::blocks::ReadError> {
        use prost::Message as _;
        let bytes = self
            .inner
            .to_vec()
            .map_err(|e| crate::blocks::ReadError::Malformed {
                block: 0,
                what: e.to_string(),
            })?;
        let proto = biscuit_auth::format::schema::Biscuit::decode(&bytes[..]).map_err(|e| {
            crate::blocks::ReadError::Malformed {
                block: 0,
                what: e.to_string(),
            }
        })?;
        crate::blocks::read_all(&proto, detail)
    }

    /// Refuses a block no reader would take: a token holds at most
    /// [`crate::bounds::MAX_BLOCKS`].
    fn room_for_a_block(&self) -> Result<(), Error> {
        let count = self.block_count();
        if count >= crate::bounds::MAX_BLOCKS {
            return Err(Error::Invalid(format!(
                "this token has {count} blocks, the most a token may hold: \
                 delegate from an earlier one"
            )));
        }
        Ok(())
    }

    pub(crate) fn append_third_party(
        &self,
        signer: &crate::keys::SecretKey,
        block: biscuit_auth::builder::BlockBuilder,
    ) -> Result<UnverifiedMandate, Error> {
        self.room_for_a_block()?;
        let request = self.inner.third_party_request().map_err(Error::Biscuit)?;
        let signed = request
            .create_block(&signer.key_pair().private(), block)
            .and_then(|b| b.serialize())
            .map_err(Error::Biscuit)?;
        self.inner
            .append_third_party(&signed)
            .map(UnverifiedMandate::new)
            .map_err(Error::Biscuit)
    }

    pub(crate) fn append(
        &self,
        block: biscuit_auth::builder::BlockBuilder,
    ) -> Result<UnverifiedMandate, Error> {
        self.room_for_a_block()?;
        self.inner
            .append(block)
            .map(UnverifiedMandate::new)
            .map_err(Error::Biscuit)
    }
}

/// SHA-256 over every revocation id, each length-prefixed.
fn digest_hex(ids: &[Vec<u8>]) -> String {
    let mut hasher = sha2::Sha256::new();
    for id in ids {
        hasher.update((id.len() as u64).to_be_bytes());
        hasher.update(id);
    }
    hex::encode(hasher.finalize())
}

fn last_hex(ids: &[Vec<u8>]) -> String {
    ids.last().map(hex::encode).unwrap_or_default()
}

fn signer_of(external: &[Option<biscuit_auth::PublicKey>], index: usize) -> Option<PublicKey> {
    external
        .get(index)
        .copied()
        .flatten()
        .and_then(|k| PublicKey::from_biscuit(k).ok())
}

/// A token whose every signature verified against a trusted root key.
///
/// Claims are read from it by the verifier, which evaluates its Datalog under
/// run limits; this type itself only guarantees authenticity.
#[derive(Clone)]
pub struct Mandate {
    biscuit: Biscuit,
    /// The root key the signatures verified against (or that signed it).
    root: PublicKey,
}

impl std::fmt::Debug for Mandate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mandate(id: {})", self.token_id_hex())
    }
}

impl Mandate {
    /// Parses and verifies base64 text in one step (what a verifier does on
    /// every call).
    ///
    /// # Errors
    /// As [`UnverifiedMandate::from_base64`] and [`UnverifiedMandate::verify`].
    pub fn from_base64(text: &str, keys: &KeySet) -> Result<Mandate, Error> {
        // Parsed once: the root key id is read from the parsed token, then
        // the same bytes are verified.
        UnverifiedMandate::from_base64(text)?.into_verified(keys)
    }

    /// Signs a new authority block with `root`: the only way to make a
    /// `Mandate` without verifying one.
    ///
    /// # Errors
    /// [`Error::Biscuit`] if biscuit-auth cannot build the token.
    pub fn sign(
        builder: biscuit_auth::builder::BiscuitBuilder,
        root: &crate::keys::RootKey,
    ) -> Result<Mandate, Error> {
        let builder = match root.key_id {
            Some(id) => builder.root_key_id(id),
            None => builder,
        };
        builder
            .build(root.secret.key_pair())
            .map(|biscuit| Mandate {
                biscuit,
                root: root.secret.public(),
            })
            .map_err(Error::Biscuit)
    }

    /// The root key this mandate's signatures verified against.
    pub fn root(&self) -> PublicKey {
        self.root
    }

    /// The root key id the token names, if any.
    pub fn root_key_id(&self) -> Option<u32> {
        self.biscuit.root_key_id()
    }

    /// A digest of every block's signature: unlike the token id (the last
    /// block's signature alone, which two tokens ending in the same block
    /// can share), it identifies the whole token. Proofs of possession sign
    /// it, and verifiers cache by it.
    pub fn digest_hex(&self) -> String {
        digest_hex(&self.revocation_ids())
    }

    /// The verified biscuit, for building an authorizer.
    pub fn biscuit(&self) -> &Biscuit {
        &self.biscuit
    }

    /// Encodes the token as URL-safe base64.
    ///
    /// # Errors
    /// [`Error::Biscuit`] if serialisation fails.
    pub fn to_base64(&self) -> Result<String, Error> {
        self.biscuit.to_base64().map_err(Error::Biscuit)
    }

    /// The same token, forgetting that it was verified (for delegation,
    /// which works on unverified tokens).
    ///
    /// # Errors
    /// [`Error::Biscuit`] if re-encoding fails.
    pub fn to_unverified(&self) -> Result<UnverifiedMandate, Error> {
        let bytes = self.biscuit.to_vec().map_err(Error::Biscuit)?;
        UnverifiedBiscuit::from(bytes)
            .map(UnverifiedMandate::new)
            .map_err(Error::from_format)
    }

    /// Every block's revocation id, authority first.
    pub fn revocation_ids(&self) -> Vec<Vec<u8>> {
        self.biscuit.revocation_identifiers()
    }

    /// The token id: the last block's revocation id, in hex.
    pub fn token_id_hex(&self) -> String {
        last_hex(&self.revocation_ids())
    }

    /// Number of blocks, the authority block included.
    pub fn block_count(&self) -> usize {
        self.biscuit.block_count()
    }

    /// Reads the verified claims and rebuilds the delegation chain from the
    /// verified signatures.
    pub fn claims(&self) -> Claims {
        self.read().0
    }

    /// Reads every block once, structurally: the claims and chain, and each
    /// block's contents (for a verifier's cost bound). A token whose blocks
    /// exceed a structural bound or cannot be read has no claims and a
    /// broken chain (`ChainError::Unreadable`), which verifiers deny.
    pub fn read(&self) -> (Claims, Vec<BlockContents>) {
        let proto = self.biscuit.container().to_proto();
        match crate::blocks::read_all(&proto, Detail::Structure) {
            Ok(blocks) => {
                let (authority, chain) = chain::read(&blocks);
                (Claims::new(authority, chain), blocks)
            }
            Err(error) => {
                // A later block the verifier will refuse does not hide whom
                // the token was minted for: the authority block alone, signed
                // by the issuer, still names the principal and task of the
                // denial (and its expiry still applies).
                let mut authority_only = proto;
                authority_only.blocks.clear();
                let claims = match crate::blocks::read_all(&authority_only, Detail::Structure) {
                    Ok(authority) if error.block() > 0 => {
                        let (claims, _) = chain::read(&authority);
                        Claims::new(claims, Err(ChainError::Unreadable(error)))
                    }
                    _ => Claims::unreadable(ChainError::Unreadable(error)),
                };
                (claims, Vec::new())
            }
        }
    }

    /// Every block with its escaped display text (what failed checks and
    /// cost refusals quote). Deciding a request reads without text
    /// ([`Mandate::read`]); this is for explaining a denial.
    pub fn read_text(&self) -> Vec<BlockContents> {
        let proto = self.biscuit.container().to_proto();
        crate::blocks::read_all(&proto, Detail::Text).unwrap_or_default()
    }
}
