#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

use super::*;

const ACCOUNTS: &str = r#"
[[route]]
service = "accounts"
path = "/accounts/{id}/balance"
methods = ["GET"]
operation = "read"
resource = "/accounts/{id}"

[[route]]
service = "accounts"
path = "/accounts/{id}/transfers"
resource = "/accounts/{id}"
attrs = { amount = { query = "amount", type = "int", required = true }, tenant = { header = "X-Tenant" }, account = { capture = "id" } }
[route.operations]
POST = "transfer"
GET = "read"

[[route]]
service = "files"
path = "/files/**"
operation = "read"

[[route]]
service = "files"
path = "/archive/{year}/**"
operation = "read"
resource = "/archive/{year}/{**}"
"#;

fn mapping() -> Mapping {
    Mapping::from_toml(ACCOUNTS).unwrap()
}

const NO_HEADERS: &[(&str, &str)] = &[];

fn map(method: &str, target: &str) -> Result<Mapped, MappingError> {
    map_with(method, target, NO_HEADERS)
}

fn map_with(method: &str, target: &str, headers: &[(&str, &str)]) -> Result<Mapped, MappingError> {
    mapping().map(method, target, headers, SystemTime::UNIX_EPOCH)
}

#[track_caller]
fn mapped(method: &str, target: &str) -> (String, String, String, Vec<(String, AttrValue)>) {
    let m = map(method, target).unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let r = m.request;
    (r.service, r.operation, r.resource.to_string(), r.attrs)
}

#[track_caller]
fn refused(result: Result<Mapped, MappingError>, code: &str, needle: &str) {
    let error = result.expect_err("expected a refusal");
    assert_eq!(error.code(), code, "{error}");
    assert!(
        error.to_string().contains(needle),
        "{error:?} should contain {needle:?}"
    );
}

#[test]
fn templates_capture_segments_and_fill_the_resource() {
    let (service, operation, resource, attrs) = mapped("GET", "/accounts/42/balance");
    assert_eq!((service.as_str(), operation.as_str()), ("accounts", "read"));
    assert_eq!(resource, "/accounts/42");
    assert!(attrs.is_empty());
    // A trailing slash is the same path; the query does not change the match.
    assert_eq!(mapped("GET", "/accounts/42/balance/?x=1").2, "/accounts/42");
    // Literal segments must match exactly; captures take one whole segment.
    refused(map("GET", "/accounts/42/balances"), "no_route", "no route");
    refused(map("GET", "/accounts/42/x/balance"), "no_route", "no route");
    refused(map("GET", "/Accounts/42/balance"), "no_route", "no route");
}

#[test]
fn methods_select_routes_and_operations() {
    assert_eq!(map("GET", "/accounts/42/balance").unwrap().route, 1);
    // The first route accepts GET only; no later route matches its path.
    refused(map("POST", "/accounts/42/balance"), "no_route", "no route");
    assert_eq!(
        mapped("POST", "/accounts/7/transfers?amount=5").1,
        "transfer"
    );
    assert_eq!(mapped("GET", "/accounts/7/transfers?amount=5").1, "read");
    refused(
        map("DELETE", "/accounts/7/transfers?amount=5"),
        "no_route",
        "no route",
    );
    // Methods are case-sensitive tokens.
    refused(map("get", "/accounts/42/balance"), "bad_method", "method");
    refused(map("", "/accounts/42/balance"), "bad_method", "method");
    refused(
        map(&"G".repeat(MAX_METHOD_LEN + 1), "/x"),
        "bad_method",
        "method",
    );
}

#[test]
fn prefix_routes_match_the_rest_and_default_to_the_path() {
    assert_eq!(mapped("GET", "/files/a/b.txt").2, "/files/a/b.txt");
    assert_eq!(mapped("PUT", "/files").2, "/files");
    assert_eq!(
        mapped("GET", "/archive/2024/q3/r.pdf").2,
        "/archive/2024/q3/r.pdf"
    );
    assert_eq!(mapped("GET", "/archive/2024").2, "/archive/2024");
    refused(map("GET", "/filesystem"), "no_route", "no route");
}

#[test]
fn attrs_come_from_query_header_and_captures_with_types() {
    let headers = [("x-tenant", "acme")];
    let m = map_with("POST", "/accounts/7/transfers?amount=120&note=x", &headers).unwrap();
    let attrs = m.request.attrs;
    assert!(
        attrs.contains(&("amount".into(), AttrValue::Int(120))),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("tenant".into(), AttrValue::Str("acme".into()))),
        "{attrs:?}"
    );
    // A capture is a string even when it looks like a number.
    assert!(
        attrs.contains(&("account".into(), AttrValue::Str("7".into()))),
        "{attrs:?}"
    );
    // An optional attribute that is absent is left out.
    let m = map("POST", "/accounts/7/transfers?amount=-3").unwrap();
    assert_eq!(m.request.attrs.len(), 2);
    // Query values are form-decoded.
    let m = map_with("POST", "/accounts/7/transfers?amount=%2B5", NO_HEADERS).unwrap();
    assert!(m
        .request
        .attrs
        .contains(&("amount".into(), AttrValue::Int(5))));
}

#[test]
fn bad_attrs_are_refused_naming_the_attribute() {
    let t = "/accounts/7/transfers";
    refused(map("POST", t), "bad_attr", "`amount` refused: missing");
    refused(
        map("POST", &format!("{t}?amount=ten")),
        "bad_attr",
        "not a decimal 64-bit integer",
    );
    refused(
        map("POST", &format!("{t}?amount=99999999999999999999")),
        "bad_attr",
        "integer",
    );
    refused(
        map("POST", &format!("{t}?amount=1.5")),
        "bad_attr",
        "integer",
    );
    refused(
        map("POST", &format!("{t}?amount=1&amount=2")),
        "bad_attr",
        "more than once",
    );
    refused(
        map("POST", &format!("{t}?amount=%ZZ")),
        "bad_attr",
        "two hex digits",
    );
    refused(
        map("POST", &format!("{t}?amount=%0A5")),
        "bad_attr",
        "control character",
    );
    let long = "9".repeat(MAX_ATTR_VALUE_LEN + 1);
    refused(
        map("POST", &format!("{t}?amount={long}")),
        "bad_attr",
        "longer than",
    );
    let ok = format!("{t}?amount=1");
    refused(
        map_with("POST", &ok, &[("X-Tenant", "a"), ("x-tenant", "b")]),
        "bad_attr",
        "sent more than once",
    );
    refused(
        map_with("POST", &ok, &[("x-tenant", "caf\u{e9}")]),
        "bad_attr",
        "not visible ASCII",
    );
    let many = "a=1&".repeat(MAX_QUERY_PAIRS + 1);
    refused(
        map("POST", &format!("{t}?{many}amount=1")),
        "bad_attr",
        "more than 256 parameters",
    );
}

#[test]
fn dot_segments_and_ambiguous_encodings_are_refused() {
    for (target, needle) in [
        ("/files/../etc/passwd", "`..`"),
        ("/files/%2e%2e/etc/passwd", "`..`"),
        ("/files/%2E%2E/etc", "`..`"),
        ("/files/./a", "`.`"),
        ("/files/a%2Fb", "second percent-encoding"),
        ("/files/a%5Cb", "second percent-encoding"),
        ("/files/..;/admin", "second percent-encoding"),
        ("/files/%252e%252e/x", "second percent-encoding"),
        ("/files//a", "empty segment"),
        ("/files/a%20b", "whitespace"),
        ("/files/a%00b", "control character"),
        ("/files/caf%C3%A9", "non-ASCII"),
        ("/files/%C3", "not UTF-8"),
        ("/files/%4", "two hex digits"),
        ("files/a", "not an absolute path"),
        ("http://evil/files/a", "not an absolute path"),
        ("*", "not an absolute path"),
        ("", "not an absolute path"),
        ("/files/a#frag", "fragment"),
        ("/files/a b", "visible ASCII"),
        ("/files/caf\u{e9}", "visible ASCII"),
    ] {
        refused(map("GET", target), "bad_path", needle);
    }
    let long = format!("/files/{}", "a".repeat(MAX_TARGET_LEN));
    refused(map("GET", &long), "bad_path", "longer than");
    let deep = "/a".repeat(MAX_SEGMENTS + 1);
    refused(
        map("GET", &format!("/files{deep}")),
        "bad_path",
        "more than 128 segments",
    );
}

#[test]
fn percent_encoded_plain_characters_are_decoded_before_matching() {
    assert_eq!(mapped("GET", "/%61ccounts/4%32/balance").2, "/accounts/42");
    assert_eq!(mapped("GET", "/files/%41b").2, "/files/Ab");
}

#[test]
fn a_resource_the_verifier_refuses_is_refused() {
    // The resource is 1024 bytes at most; the target may be longer.
    let long = format!("/files/{}", "a".repeat(ResourcePath::MAX_LEN));
    refused(map("GET", &long), "bad_request", "longer than 1024 bytes");
}

#[test]
fn no_route_fails_closed() {
    refused(map("GET", "/"), "no_route", "no route");
    refused(map("GET", "/admin"), "no_route", "no route");
}

#[track_caller]
fn load_refused(text: &str, needle: &str) {
    let error = Mapping::from_toml(text).expect_err("expected the file to be refused");
    assert_eq!(error.code(), "mapping_invalid", "{error}");
    let message = error.to_string();
    assert!(
        message.contains(needle),
        "{message:?} should contain {needle:?}"
    );
}

fn one_route(body: &str) -> String {
    format!("[[route]]\nservice = \"s\"\noperation = \"read\"\n{body}\n")
}

#[test]
fn files_with_unknown_keys_or_bad_routes_are_refused_naming_the_route() {
    load_refused("", "no [[route]]");
    load_refused("[[routes]]\nservice = \"s\"", "unknown field `routes`");
    load_refused(
        &one_route("path = \"/x\"\nmethod = [\"GET\"]"),
        "unknown field `method`",
    );
    load_refused(
        &one_route("path = \"/x\"\nattrs = { a = { query = \"a\", typ = \"int\" } }"),
        "unknown field `typ`",
    );
    load_refused(
        &one_route("path = \"/x\"\nattrs = { a = { query = \"a\", type = \"float\" } }"),
        "unknown variant",
    );
    let second = |body: &str| format!("{}{}", one_route("path = \"/ok\""), one_route(body));
    load_refused(
        &second("path = \"x\""),
        "[[route]] number 2 (path \"x\"): the path template must start with `/`",
    );
    load_refused(&second("path = \"/a/**/b\""), "number 2");
    load_refused(
        &second("path = \"/a/**/b\""),
        "`**` may only be the last segment",
    );
    load_refused(&second("path = \"/a/{id\""), "a capture is a whole segment");
    load_refused(
        &second("path = \"/a/x{id}\""),
        "a capture is a whole segment",
    );
    load_refused(&second("path = \"/a/{Id}\""), "names are lower-case");
    load_refused(&second("path = \"/a/{id}/{id}\""), "appears twice");
    load_refused(&second("path = \"/a/../b\""), "`.` or `..` segment");
    load_refused(&second("path = \"/a//b\""), "empty segment");
    load_refused(
        &second("path = \"/a\"\nresource = \"/a/{id}\""),
        "does not capture",
    );
    load_refused(
        &second("path = \"/a/{id}\"\nresource = \"/a/{id\""),
        "unclosed",
    );
    load_refused(
        &second("path = \"/a/{id}\"\nresource = \"/a/}\""),
        "unmatched",
    );
    load_refused(
        &second("path = \"/a\"\nresource = \"/a/{**}\""),
        "does not end in `**`",
    );
    load_refused(
        &second("path = \"/a/{id}\"\nresource = \"/a/../{id}\""),
        "not a valid resource",
    );
    load_refused(&second("path = \"/a\"\nmethods = [\"get\"]"), "upper-case");
    load_refused(&second("path = \"/a\"\nmethods = []"), "`methods` is empty");
    load_refused(
        &second("path = \"/a\"\nattrs = { a = { header = \"x y\" } }"),
        "not a header name",
    );
    load_refused(
        &second("path = \"/a\"\nattrs = { a = { capture = \"id\" } }"),
        "no capture `{id}`",
    );
    load_refused(
        &second("path = \"/a\"\nattrs = { a = { query = \"a\", header = \"b\" } }"),
        "exactly one of",
    );
    load_refused(
        &second("path = \"/a\"\nattrs = { \"\" = { query = \"a\" } }"),
        "attribute name",
    );
    load_refused(
        "[[route]]\nservice = \"s\"\npath = \"/a\"\noperation = \"r\"\noperations = { GET = \"r\" }",
        "not both",
    );
    load_refused("[[route]]\nservice = \"s\"\npath = \"/a\"", "no operation");
    load_refused(
        "[[route]]\nservice = \"s\"\npath = \"/a\"\nmethods = [\"PUT\"]\noperations = { GET = \"r\" }",
        "method PUT is listed in `methods` but has no entry in `operations`",
    );
    load_refused(
        "[[route]]\nservice = \"bad\\u0007service\"\npath = \"/a\"\noperation = \"r\"",
        "service",
    );
}

#[test]
fn a_mapping_file_is_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("mandate-mapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mapping.toml");
    std::fs::write(&path, ACCOUNTS).unwrap();
    assert_eq!(Mapping::from_file(&path).unwrap().len(), 4);
    let missing = dir.join("missing.toml");
    let error = Mapping::from_file(&missing).unwrap_err();
    assert!(
        error.to_string().contains("cannot read mapping file"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
