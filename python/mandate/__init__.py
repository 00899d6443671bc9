"""Mandate: capability tokens for AI agents.

Keys, tokens, offline delegation, proofs of possession and an embedded
verifier come from the Rust crates (``mandate._native``); this package adds
small HTTP clients (``mandate.client``) and a helper for the official MCP
SDK (``mandate.mcp``). No Mandate decision is made in Python.
"""

from mandate._native import (
    ChainError,
    DatalogError,
    Decision,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidNameError,
    InvalidSignatureError,
    Issuer,
    KeyFileError,
    KeyPermissionsError,
    MalformedTokenError,
    MandateError,
    NotHolderError,
    NotInParentError,
    Policy,
    PublicKey,
    RegistryClient,
    RegistryError,
    RevocationStore,
    SecretKey,
    Token,
    TokenExpiredError,
    UnknownKeyIdError,
    Verifier,
    fingerprint,
)

__all__ = [
    "ChainError",
    "DatalogError",
    "Decision",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidNameError",
    "InvalidSignatureError",
    "Issuer",
    "KeyFileError",
    "KeyPermissionsError",
    "MalformedTokenError",
    "MandateError",
    "NotHolderError",
    "NotInParentError",
    "Policy",
    "PublicKey",
    "RegistryClient",
    "RegistryError",
    "RevocationStore",
    "SecretKey",
    "Token",
    "TokenExpiredError",
    "UnknownKeyIdError",
    "Verifier",
    "fingerprint",
]
