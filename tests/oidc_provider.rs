//! The issuer against a real, independent OpenID provider: the certified
//! `oidc-provider` package from the npm registry, run with this machine's
//! Node.js on 127.0.0.1 (`tests/fixtures/oidc/provider.mjs`, its version
//! pinned in `package.json` and `package-lock.json`).
//!
//! A person logs in through the provider's own authorization code flow
//! with PKCE (discovery, `/auth`, its interaction, the token endpoint), and
//! the ID token it signs is exchanged at `mandate issuer serve` — configured
//! with nothing but the provider's issuer URL, the client id as audience and
//! the `jwks_uri` its discovery document names — for a task mandate, which
//! the agent delegates and `mandate serve` decides on. A token the provider
//! issued to another application is refused with the RFC's error.
//!
//! The package is installed once with `npm ci` into the cargo target folder
//! (`oidc-provider/` beside the build profiles) and reused while the lock
//! file is unchanged. Without `node` and `npm`, or when the install fails
//! (no network), each test prints `SKIPPED: <why>` and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::idp::ISSUER_ID;
use common::issuer_site;
use common::server::Server;
use common::{mandate, task_open, Dir};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The client the Mandate issuer trusts tokens for (its audience).
const CLIENT: &str = "mandate-issuer";
/// Another application registered at the same provider.
const OTHER_CLIENT: &str = "reporting-app";
/// The redirect URI both clients registered; never followed, only read.
const REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The person who logs in (an account of provider.mjs, group `staff`).
const ALICE: &str = "alice@example.com";

/// `tests/fixtures/oidc/NAME`.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/oidc")
        .join(name)
}

/// Where the package is installed: `oidc-provider/` in the cargo target
/// folder (the parent of the build profile holding the `mandate` binary).
fn install_dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_mandate"));
    let profile = binary.parent().unwrap();
    profile.parent().unwrap().join("oidc-provider")
}

/// The installed provider's folder, or why it could not be had; installs
/// once per test binary.
fn provider_dir() -> Result<&'static Path, &'static str> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match INSTALLED.get_or_init(install) {
        Ok(dir) => Ok(dir.as_path()),
        Err(why) => Err(why.as_str()),
    }
}

/// The oldest Node.js major version the pinned package runs on.
const NODE_MAJOR: u32 = 20;

fn install() -> Result<PathBuf, String> {
    let mut versions = Vec::new();
    for tool in ["node", "npm"] {
        match Command::new(tool).arg("--version").output() {
            Ok(out) if out.status.success() => {
                versions.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
            }
            _ => return Err(format!("{tool} not found (install Node.js with npm)")),
        }
    }
    let major = versions[0]
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major.is_none_or(|m| m < NODE_MAJOR) {
        return Err(format!(
            "node {} is older than {NODE_MAJOR}, which oidc-provider needs",
            versions[0]
        ));
    }
    let dir = install_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    for file in ["package.json", "provider.mjs"] {
        std::fs::copy(fixture(file), dir.join(file)).unwrap();
    }
    let lock = std::fs::read(fixture("package-lock.json")).unwrap();
    let installed = dir.join("node_modules/oidc-provider/package.json").exists()
        && std::fs::read(dir.join("package-lock.json")).ok().as_ref() == Some(&lock);
    if installed {
        return Ok(dir);
    }
    std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
    let out = Command::new("npm")
        .args([
            "ci",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
            "--fetch-retries=1",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("npm ci: {e}"))?;
    if !out.status.success() {
        // Not installed: the next run tries again.
        let _ = std::fs::remove_file(dir.join("package-lock.json"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!(
            "npm ci of oidc-provider failed (no network?): {why}"
        ));
    }
    Ok(dir)
}

/// The provider's folder, or `None` after printing why the test skips.
macro_rules! provider_or_skip {
    () => {
        match provider_dir() {
            Ok(dir) => dir,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

/// The provider, running; its discovery document read.
struct Provider {
    _server: Server,
    issuer: String,
    discovery: Value,
}

impl Provider {
    fn start(dir: &Path, log: PathBuf) -> Provider {
        let mut node = Command::new("node");
        node.arg(dir.join("provider.mjs")).current_dir(dir);
        let server = Server::spawn("oidc-provider", node, log).unwrap_or_else(|e| panic!("{e}"));
        let issuer = server.url.clone();
        let discovery: Value = ureq::get(&format!("{issuer}/.well-known/openid-configuration"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert_eq!(discovery["issuer"], issuer.as_str(), "{discovery}");
        Provider {
            _server: server,
            issuer,
            discovery,
        }
    }

    fn endpoint(&self, name: &str) -> String {
        self.discovery[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.discovery))
            .to_owned()
    }

    /// `person` logs in to `client` through the authorization code flow with
    /// PKCE; returns the ID token the token endpoint answers with.
    fn login(&self, client: &str, person: &str) -> String {
        let verifier = URL_SAFE_NO_PAD.encode(random::<32>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = URL_SAFE_NO_PAD.encode(random::<16>());
        let nonce = URL_SAFE_NO_PAD.encode(random::<16>());
        let mut url = url::Url::parse(&self.endpoint("authorization_endpoint")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", client)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email groups")
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("login_hint", person);

        // The browser's part: follow redirects, keep cookies, stop at the
        // redirect back to the client.
        let mut browser = Browser::new(&self.issuer);
        let mut next = url.to_string();
        let mut hops = 0;
        let callback = loop {
            let location = browser.get(&next);
            if location.starts_with(REDIRECT_URI) {
                break url::Url::parse(&location).unwrap();
            }
            hops += 1;
            assert!(
                hops < 10,
                "the login never came back to the client: {location}"
            );
            next = location;
        };
        let params: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        assert_eq!(params.get("state"), Some(&state), "{callback}");
        assert_eq!(params.get("iss"), Some(&self.issuer), "{callback}");
        let code = params
            .get("code")
            .unwrap_or_else(|| panic!("no code: {callback}"));

        let response = ureq::post(&self.endpoint("token_endpoint")).send_form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
            ("client_id", client),
        ]);
        let tokens: Value = match response {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(status, r)) => {
                panic!("token endpoint {status}: {}", r.into_string().unwrap())
            }
            Err(e) => panic!("token endpoint: {e}"),
        };
        let id_token = tokens["id_token"].as_str().unwrap().to_owned();
        let claims = claims(&id_token);
        assert_eq!(claims["nonce"], nonce.as_str(), "{claims}");
        id_token
    }
}

/// The claims of a JWT, unverified (to look at, never to trust).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The header of a JWT.
fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// Just enough of a browser for the code flow: GET without following
/// redirects, remembering the cookies the provider sets.
struct Browser {
    origin: String,
    agent: ureq::Agent,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(origin: &str) -> Browser {
        Browser {
            origin: origin.to_owned(),
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(10))
                .build(),
            cookies: BTreeMap::new(),
        }
    }

    /// GET `url` (absolute, or a path at the provider); returns where the
    /// answer redirects to, absolute.
    fn get(&mut self, url: &str) -> String {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            url.to_owned()
        };
        let mut request = self.agent.get(&url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.set("Cookie", &jar.join("; "));
        }
        let response = match request.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {url}: {e}"),
        };
        for set in response.all("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let expired = set
                .to_ascii_lowercase()
                .contains("expires=thu, 01 jan 1970");
            if value.is_empty() || expired {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = response.status();
        let Some(location) = response.header("location").map(str::to_owned) else {
            panic!(
                "GET {url}: {status} without a redirect: {}",
                response.into_string().unwrap_or_default()
            );
        };
        if location.starts_with('/') {
            format!("{}{location}", self.origin)
        } else {
            location
        }
    }
}

/// `mandate serve` and `mandate issuer serve` trusting the provider.
struct World {
    // Processes first, so they are killed before the folder is removed.
    issuer: Server,
    verifier: Server,
    provider: Provider,
    dir: Dir,
}

impl World {
    fn start(provider_dir: &Path) -> World {
        let dir = Dir::new();
        let provider = Provider::start(provider_dir, dir.file("oidc-provider.log"));
        let verifier = issuer_site::registry(&dir, &["sub.key"], &["--require-pop"]);
        // All the issuer is told about the provider: its issuer URL, the
        // client id its tokens must name, and the key set its discovery
        // document points at.
        let idp = format!(
            "{},{CLIENT},{}",
            provider.issuer,
            provider.endpoint("jwks_uri")
        );
        let issuer =
            issuer_site::issuer(&dir, "issuer", &dir.path("tasks"), &verifier.url, &idp, &[]);
        World {
            issuer,
            verifier,
            provider,
            dir,
        }
    }

    /// `mandate task open` with the ID token in file `id_token`.
    fn open(&self, id_token: &str, out: &str) -> common::Run {
        task_open(
            &self.issuer.url,
            &format!("@{}", self.dir.path(id_token)),
            "orchestrator",
            &self.dir.path("agent.key"),
            &["analytics:read"],
            &[
                "--audience",
                "analytics",
                "--description",
                "quarterly numbers",
                "--out",
                &self.dir.path(out),
            ],
        )
    }

    /// `POST /v1/authorize` as `key` holding the token in file `token`:
    /// `operation` on `resource` of the analytics service; the status and
    /// the decision.
    fn authorize(&self, token: &str, key: &str, operation: &str, resource: &str) -> (u16, Value) {
        let token_arg = format!("@{}", self.dir.path(token));
        let proof = mandate(&[
            "pop",
            "--key",
            &self.dir.path(key),
            "--token",
            &token_arg,
            "--service",
            "analytics",
            "--operation",
            operation,
            "--resource",
            resource,
        ])
        .ok_trimmed();
        let text = std::fs::read_to_string(self.dir.file(token)).unwrap();
        let body = json!({
            "token": text.trim(), "service": "analytics", "operation": operation,
            "resource": resource, "pop": proof,
        });
        let reply = common::http::post(&self.verifier.url, &body.to_string());
        (reply.status, reply.body)
    }
}

#[test]
fn a_login_at_a_real_openid_provider_is_exchanged_delegated_and_decided() {
    let dir = provider_or_skip!();
    let w = World::start(dir);

    let id_token = w.provider.login(CLIENT, ALICE);
    // The provider's own token: its issuer, our client, its key, the email.
    let (head, body) = (header(&id_token), claims(&id_token));
    assert_eq!(head["alg"], "RS256", "{head}");
    assert!(head["kid"].is_string(), "{head}");
    assert_eq!(body["iss"], w.provider.issuer.as_str(), "{body}");
    assert_eq!(body["aud"], CLIENT, "{body}");
    assert_eq!(body["email"], ALICE, "{body}");
    assert_eq!(body["groups"], json!(["staff"]), "{body}");
    std::fs::write(w.dir.file("id.jwt"), &id_token).unwrap();

    let task = w.open("id.jwt", "task.token").ok_trimmed();
    assert!(task.starts_with("task-"), "{task}");
    let inspected = mandate(&[
        "inspect",
        "--token",
        &format!("@{}", w.dir.path("task.token")),
        "--json",
    ])
    .json();
    let text = inspected.to_string();
    assert!(
        text.contains(ALICE) && text.contains(&task) && text.contains("orchestrator"),
        "{inspected}"
    );

    // The agent hands a slice to a sub-agent, offline, signed with its key.
    mandate(&[
        "delegate",
        "--token",
        &format!("@{}", w.dir.path("task.token")),
        "--signer-key",
        &w.dir.path("agent.key"),
        "--to",
        "charts",
        "--to-key",
        &w.dir.path("sub.key.pub"),
        "--resource-prefix",
        "/datasets/q3",
        "--out",
        &w.dir.path("sub.token"),
    ])
    .ok();

    let (status, allowed) = w.authorize("sub.token", "sub.key", "read", "/datasets/q3/revenue");
    assert_eq!(status, 200, "{allowed}");
    assert_eq!(allowed["principal"], ALICE, "{allowed}");
    assert_eq!(
        allowed["chain"],
        json!(["orchestrator", "charts"]),
        "{allowed}"
    );
    assert_eq!(allowed["task"], task.as_str(), "{allowed}");

    // Outside the slice the orchestrator signed: denied, naming its check.
    let (status, denied) = w.authorize("sub.token", "sub.key", "read", "/datasets/q4/revenue");
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["reason_kind"], "failed_checks", "{denied}");
    let check = &denied["failed_checks"][0];
    assert_eq!(check["author"], "agent orchestrator", "{denied}");
    assert!(
        check["rule"].as_str().unwrap().contains("/datasets/q3"),
        "{denied}"
    );
    // The issuer granted what the login's policy allows, reads: the agent
    // itself reads, and may not write.
    let (status, read) = w.authorize("task.token", "agent.key", "read", "/datasets/q4/revenue");
    assert_eq!(status, 200, "{read}");
    let (status, write) = w.authorize("task.token", "agent.key", "write", "/datasets/q3/revenue");
    assert_eq!(status, 403, "{write}");
    assert!(
        write["failed_checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["rule"] == "check if service($s), operation($o), right($s, $o)"),
        "{write}"
    );

    // Nothing of the person's login is in the issuer's log.
    assert!(!w.issuer.stderr().contains(&id_token));
}

#[test]
fn a_token_the_provider_issued_to_another_application_is_refused() {
    let dir = provider_or_skip!();
    let w = World::start(dir);

    let id_token = w.provider.login(OTHER_CLIENT, ALICE);
    assert_eq!(claims(&id_token)["aud"], OTHER_CLIENT);
    std::fs::write(w.dir.file("other.jwt"), &id_token).unwrap();

    // Through the CLI: one line naming the RFC error.
    w.open("other.jwt", "never.token").error("invalid_grant");
    assert!(!w.dir.file("never.token").exists());

    // On the wire: RFC 6749 §5.2, 400 `invalid_grant`, nothing minted.
    let key = mandate_core::SecretKey::read(&w.dir.file("agent.key")).unwrap();
    let actor = mandate_issuer::actor::sign(
        &key,
        "orchestrator",
        ISSUER_ID,
        &id_token,
        SystemTime::now(),
    );
    let response = ureq::post(&format!("{}/oauth2/token", w.issuer.url)).send_form(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", &id_token),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:id_token",
        ),
        ("actor_token", &actor),
        ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
        ("scope", "analytics:read"),
    ]);
    let (status, body) = match response {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_json::<Value>().unwrap()),
        Err(e) => panic!("token endpoint: {e}"),
    };
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"].as_str().unwrap().contains("aud"),
        "{body}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
    assert!(!w.issuer.stderr().contains("task opened"));

    // The same person's token for the issuer's own client goes through.
    std::fs::write(w.dir.file("id.jwt"), w.provider.login(CLIENT, ALICE)).unwrap();
    assert!(w
        .open("id.jwt", "task.token")
        .ok_trimmed()
        .starts_with("task-"));
}
