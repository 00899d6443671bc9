//! The names of the facts that make up the Mandate vocabulary.
//!
//! `datalog/README.md` is the normative description; these constants are the
//! only place the Rust code spells the names, so a rename is one edit here
//! plus that file. Nothing in this module evaluates Datalog.

/// `principal(P)`: the person (or system) the mandate acts for. Authority block.
pub const PRINCIPAL: &str = "principal";
/// `agent(Name, Key)`: the first agent; `Key` is the 32 bytes of its Ed25519
/// public key, or empty bytes for a bearer mandate. Authority block.
pub const AGENT: &str = "agent";
/// `task(Id)`: the task the mandate was minted for. Authority block.
pub const TASK: &str = "task";
/// `right(Service, Operation)`: one granted right. Authority block.
pub const RIGHT: &str = "right";
/// `issued_at(T)`: mint time. Authority block.
pub const ISSUED_AT: &str = "issued_at";
/// `expires_at(T)`: expiry, enforced by a matching `check if time($t), $t <= T`.
pub const EXPIRES_AT: &str = "expires_at";

/// `hop(Name, Key)`: in a block signed by the current holder's agent key,
/// hands the authority to agent `Name` with public key `Key` (32 bytes).
pub const HOP: &str = "hop";

/// `time(T)`: request time, supplied by the verifier.
pub const TIME: &str = "time";
/// `service(S)`: the service being called, supplied by the verifier.
pub const SERVICE: &str = "service";
/// `operation(O)`: the operation being called, supplied by the verifier.
pub const OPERATION: &str = "operation";
/// `resource(R)`: the normalised resource path, supplied by the verifier.
pub const RESOURCE: &str = "resource";
/// `attr(Key, Value)`: a runtime condition of the request, supplied by the verifier.
pub const ATTR: &str = "attr";
/// `attr_host(Key, Host)`: for an attribute whose value is an absolute
/// http(s) URL, its normalised host, supplied by the verifier.
pub const ATTR_HOST: &str = "attr_host";
/// `acting_agent(Name)`: the agent holding the authority, supplied by the verifier
/// once the chain is verified.
pub const ACTING_AGENT: &str = "acting_agent";
/// `delegation_depth(N)`: number of hops from the first agent to the acting
/// agent, supplied by the verifier.
pub const DELEGATION_DEPTH: &str = "delegation_depth";

/// Facts only the issuer may state. A service policy that defines any of them
/// is refused, because the authorizer trusts its own facts as much as the
/// authority block's.
pub const ISSUER_ONLY: &[&str] = &[PRINCIPAL, AGENT, TASK, RIGHT, ISSUED_AT, EXPIRES_AT, HOP];

/// Facts only the verifier may state about a request.
pub const VERIFIER_ONLY: &[&str] = &[
    TIME,
    SERVICE,
    OPERATION,
    RESOURCE,
    ATTR,
    ATTR_HOST,
    ACTING_AGENT,
    DELEGATION_DEPTH,
];
