//! Structural limits on a token's blocks, checked before anything walks
//! them. They are far above what Mandate itself writes (a hop block holds a
//! dozen statements of depth 2) and far below what would strain memory or
//! a thread stack.

/// Most blocks a token may have, the authority block included.
pub const MAX_BLOCKS: usize = 64;
/// Most facts, rules and checks one block may hold.
pub const MAX_STATEMENTS: usize = 256;
/// Most symbols one block may define.
pub const MAX_SYMBOLS: usize = 1024;
/// Longest symbol (string) in bytes.
pub const MAX_SYMBOL_LEN: usize = 4096;
/// Most terms one predicate may have.
pub const MAX_TERMS: usize = 16;
/// Most predicates one rule body or check query may join.
pub const MAX_BODY: usize = 16;
/// Most queries (`or` alternatives) one check may have.
pub const MAX_QUERIES: usize = 16;
/// Most expressions one rule body or check query may hold.
pub const MAX_EXPRESSIONS: usize = 32;
/// Most operations one expression may hold, closure bodies included.
pub const MAX_OPS: usize = 256;
/// Deepest nesting of closures (`$x -> ...`, and the right side of `&&`
/// and `||`, which biscuit encodes as closures).
pub const MAX_CLOSURE_DEPTH: usize = 8;
/// Deepest nesting of collections (a set inside an array inside a map).
pub const MAX_TERM_DEPTH: usize = 4;
/// Most collection elements one statement may hold, nested ones included.
pub const MAX_ELEMENTS: usize = 1024;
