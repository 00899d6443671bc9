"""Mandate: capability tokens for AI agents.

Keys, tokens, offline delegation, proofs of possession, an embedded verifier
and the issuer's task client (``IssuerClient``: open, refresh, close) come
from the Rust crates (``mandate._native``); this package adds a client of the
authorization API (``mandate.client``) and a helper for the official MCP SDK
(``mandate.mcp``). No Mandate decision is made in Python.
"""

from mandate._native import (
    ChainError,
    DatalogError,
    Decision,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidNameError,
    InvalidSignatureError,
    Issued,
    Issuer,
    IssuerClient,
    IssuerError,
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
    TaskAuthError,
    TaskClosedError,
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
    "Issued",
    "Issuer",
    "IssuerClient",
    "IssuerError",
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
    "TaskAuthError",
    "TaskClosedError",
    "Token",
    "TokenExpiredError",
    "UnknownKeyIdError",
    "Verifier",
    "fingerprint",
]
