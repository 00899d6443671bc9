//! Symbol tables as biscuit-auth resolves them: the default symbols of the
//! Biscuit format, then a token's (or a third-party block's) own symbols.

/// The default symbols of the Biscuit format (spec: "Symbols"), which every
/// symbol table starts with; indices from [`SYMBOL_OFFSET`] name a token's
/// own symbols. biscuit-auth keeps its copy private.
pub(crate) const DEFAULT_SYMBOLS: [&str; 28] = [
    "read",
    "write",
    "resource",
    "operation",
    "right",
    "time",
    "role",
    "owner",
    "tenant",
    "namespace",
    "user",
    "team",
    "service",
    "admin",
    "email",
    "group",
    "member",
    "ip_address",
    "client",
    "client_ip",
    "domain",
    "path",
    "version",
    "cluster",
    "node",
    "hostname",
    "nonce",
    "query",
];
pub(crate) const SYMBOL_OFFSET: u64 = 1024;

/// A symbol table: the default symbols, then `0`.
#[derive(Clone, Copy)]
pub(crate) struct Symbols<'a>(pub(crate) &'a [&'a str]);

impl<'a> Symbols<'a> {
    /// The string at `index`, if the table has one.
    pub(crate) fn get(&self, index: u64) -> Option<&'a str> {
        if index < SYMBOL_OFFSET {
            usize::try_from(index)
                .ok()
                .and_then(|i| DEFAULT_SYMBOLS.get(i).copied())
        } else {
            usize::try_from(index - SYMBOL_OFFSET)
                .ok()
                .and_then(|i| self.0.get(i).copied())
        }
    }
}
