//! Blocks appended to a token with biscuit-auth directly, as anyone holding
//! the token's bytes (and, for a signed block, some key) can, so the tests do
//! not depend on the CLI refusing to build them.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::{PrivateKey, UnverifiedBiscuit};

/// Appends `block` as an ordinary (unsigned) block.
pub fn append(token: &str, block: BlockBuilder) -> String {
    let token = UnverifiedBiscuit::from_base64(token).unwrap();
    token.append(block).unwrap().to_base64().unwrap()
}

/// Appends the Datalog `datalog` as an ordinary (unsigned) block.
pub fn append_unsigned(token: &str, datalog: &str) -> String {
    append(token, BlockBuilder::new().code(datalog).unwrap())
}

/// Appends the Datalog `datalog` as a block signed by `signer` (a Biscuit
/// third-party block).
pub fn append_signed(token: &str, signer: &PrivateKey, datalog: &str) -> String {
    let token = UnverifiedBiscuit::from_base64(token).unwrap();
    let block = token
        .third_party_request()
        .unwrap()
        .create_block(signer, BlockBuilder::new().code(datalog).unwrap())
        .unwrap()
        .serialize()
        .unwrap();
    token
        .append_third_party(&block)
        .unwrap()
        .to_base64()
        .unwrap()
}

/// The private key in the file `path`, as biscuit-auth reads it, to sign
/// blocks with.
pub fn private_key(path: &str) -> PrivateKey {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim().parse().unwrap()
}

/// `hop(Name, Key)` as Mandate writes it: the key (`ed25519/<hex>`) as 32
/// bytes.
pub fn hop_fact(name: &str, key: &str) -> String {
    let hex = key.trim_start_matches("ed25519/");
    format!("hop(\"{name}\", hex:{hex});")
}
