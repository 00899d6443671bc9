//! Reading a call's mandate and proof from `_meta`, or from the reserved
//! argument, and removing that argument before the tool sees the arguments.

use rmcp::model::{CallToolRequestParams, JsonObject};
use serde_json::Value;

/// `_meta` key holding the mandate (base64 token text).
pub const META_TOKEN: &str = "mandate/token";
/// `_meta` key holding the acting agent's proof of possession.
pub const META_POP: &str = "mandate/pop";
/// Argument clients that cannot set `_meta` use instead:
/// `{"token": "...", "pop": "..."}`.
pub const RESERVED_ARGUMENT: &str = "_mandate";

/// A call's mandate and proof, as sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The token text.
    pub token: String,
    /// The proof of possession, if any.
    pub pop: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &mandate_core::fingerprint(&self.token))
            .field("pop", &self.pop.is_some())
            .finish()
    }
}

fn text(object: &JsonObject, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Credentials {
    /// Takes the credentials of a call: from its `_meta` when that carries a
    /// token, otherwise from the reserved argument. rmcp moves a request's
    /// `_meta` into its `RequestContext` (`context.meta`), which is `meta`
    /// here; one still left in `params` counts too. The reserved argument is
    /// removed either way, so a tool never receives a mandate.
    pub fn take(params: &mut CallToolRequestParams, meta: &JsonObject) -> Option<Credentials> {
        let reserved = params
            .arguments
            .as_mut()
            .and_then(|args| args.remove(RESERVED_ARGUMENT));
        let metas = [Some(meta), params.meta.as_ref().map(|m| &***m)];
        for meta in metas.into_iter().flatten() {
            if let Some(token) = text(meta, META_TOKEN) {
                return Some(Credentials {
                    token,
                    pop: text(meta, META_POP),
                });
            }
        }
        let Some(Value::Object(reserved)) = reserved else {
            return None;
        };
        Some(Credentials {
            token: text(&reserved, "token")?,
            pop: text(&reserved, "pop"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // reason: fixed test inputs.

    use super::*;
    use serde_json::json;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    fn params(arguments: Value) -> CallToolRequestParams {
        let mut params = CallToolRequestParams::new("read_dataset");
        params.arguments = Some(object(arguments));
        params
    }

    #[test]
    fn meta_wins_and_the_reserved_argument_is_always_removed() {
        let mut call = params(json!({"path": "/d", "_mandate": {"token": "arg", "pop": "p2"}}));
        let meta = object(json!({"mandate/token": "meta", "mandate/pop": "p1"}));
        let credentials = Credentials::take(&mut call, &meta).unwrap();
        assert_eq!(credentials.token, "meta");
        assert_eq!(credentials.pop.as_deref(), Some("p1"));
        assert_eq!(call.arguments.unwrap(), object(json!({"path": "/d"})));
    }

    #[test]
    fn the_reserved_argument_serves_clients_without_meta() {
        let mut call = params(json!({"path": "/d", "_mandate": {"token": "arg"}}));
        let credentials = Credentials::take(&mut call, &JsonObject::new()).unwrap();
        assert_eq!(credentials.token, "arg");
        assert_eq!(credentials.pop, None);
        assert!(!format!("{credentials:?}").contains("arg"));
    }

    #[test]
    fn no_token_anywhere_is_none() {
        let mut call = params(json!({"path": "/d", "_mandate": "not an object"}));
        assert!(Credentials::take(&mut call, &object(json!({"mandate/pop": "p"}))).is_none());
        assert_eq!(call.arguments.unwrap(), object(json!({"path": "/d"})));
    }
}
