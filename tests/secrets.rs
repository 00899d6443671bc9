//! Black-box tests of secrets and bounds through the `mandate` binary: key
//! material is never echoed, not even in part; a private key file others can
//! read is refused, as ssh does; duration flags stay within stated maxima.
//! Every refusal is exit 2 with one `error:` line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use common::world::World;
use common::{mandate, request_flags, Run};

/// The hex digits of a private key file (`ed25519-private/<hex>`).
fn private_hex(w: &World, name: &str) -> String {
    let text = std::fs::read_to_string(w.file(name)).unwrap();
    text.trim()
        .strip_prefix("ed25519-private/")
        .expect("a private key file")
        .to_owned()
}

/// `mandate issue` of dave's `expenses:read` for bot, with `extra` flags.
fn issue_dave(w: &World, extra: &[&str]) -> Run {
    let args = [
        "--principal",
        "dave",
        "--agent",
        "bot",
        "--right",
        "expenses:read",
    ];
    w.issue_run(&[&args[..], extra].concat())
}

/// Asserts that no 8 consecutive hex digits of `secret` appear in the run's
/// output.
#[track_caller]
fn assert_not_echoed(run: &Run, secret: &str) {
    for start in 0..=secret.len() - 8 {
        let window = &secret[start..start + 8];
        assert!(
            !run.stderr.contains(window) && !run.stdout.contains(window),
            "key material {window} echoed\n{run}"
        );
    }
}

#[test]
fn a_private_key_given_where_a_public_key_is_expected_is_never_echoed() {
    let w = World::new();
    w.keygen("agent");
    let secret = private_hex(&w, "agent");
    let text = format!("ed25519-private/{secret}");
    let file = w.path("agent");
    let issue = |agent_key: &str| issue_dave(&w, &["--agent-key", agent_key]);
    let run = issue(&text);
    run.error("this looks like a private key; give the public key (`.pub` file)");
    assert_not_echoed(&run, &secret);
    let run = issue(&file);
    run.error(&format!(
        "{file} looks like a private key; give the public key (`{file}.pub`)"
    ));
    assert_not_echoed(&run, &secret);
    // Bare hex, or hex after the public prefix, is not echoed either.
    for arg in [secret.clone(), format!("ed25519/{secret}00")] {
        let run = issue(&arg);
        run.error("invalid key");
        assert_not_echoed(&run, &secret);
    }

    let token = issue(&w.path("agent.pub")).ok_trimmed();
    for root_pub in [text.as_str(), file.as_str(), &format!("7={text}")] {
        let mut args = vec!["authorize", "--root-pub", root_pub, "--token", &token];
        args.extend(request_flags("expenses", "read", "/r"));
        let run = mandate(&args);
        run.error("looks like a private key");
        assert_not_echoed(&run, &secret);
    }

    // A revocation names an agent by its public key; a private key is
    // refused before anything is written anywhere.
    let run = mandate(&["revoke", "--agent", &text, "--store", &w.path("store")]);
    run.error("looks like a private key");
    assert_not_echoed(&run, &secret);
}

#[test]
fn a_private_key_given_where_a_key_file_is_expected_is_never_echoed() {
    // Found by review: `--key "$(cat agent.key)"` printed the whole key in
    // "reading ed25519-private/<hex>: No such file or directory".
    let w = World::new();
    w.keygen("agent");
    let secret = private_hex(&w, "agent");
    let text = format!("ed25519-private/{secret}");
    let token = issue_dave(&w, &["--agent-key", &w.path("agent.pub")]).ok_trimmed();
    let runs = [
        mandate(&[
            "pop",
            "--key",
            &text,
            "--token",
            &token,
            "--service",
            "expenses",
            "--operation",
            "read",
            "--resource",
            "/r",
        ]),
        mandate(&[
            "issue",
            "--root-key",
            &text,
            "--principal",
            "dave",
            "--agent",
            "bot",
            "--right",
            "expenses:read",
            "--ttl",
            "1h",
        ]),
        mandate(&[
            "delegate",
            "--token",
            &token,
            "--signer-key",
            &text,
            "--operation",
            "read",
        ]),
        // Bare hex is a secret too.
        mandate(&[
            "pop",
            "--key",
            &secret,
            "--token",
            &token,
            "--service",
            "expenses",
            "--operation",
            "read",
            "--resource",
            "/r",
        ]),
    ];
    for run in &runs {
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains("not shown"), "{run}");
        assert_not_echoed(run, &secret);
    }
}

#[test]
fn a_server_given_key_text_for_its_tls_or_audit_key_file_never_echoes_it() {
    // Found by review: `serve --tls-key "$(cat tls.key)"` printed the PEM
    // twice, and `--audit-key "$(cat audit.key)"` the Ed25519 key.
    let w = World::new();
    w.keygen("audit");
    let secret = private_hex(&w, "audit");
    let store = w.path("store");
    let root = w.trust();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &store,
            "--root-pub",
            &root,
        ];
        args.extend_from_slice(extra);
        mandate(&args)
    };
    let pem_body = "MC4CAQAwBQYDK2VwBCIEIMoZT8kZ5j9W9EIYQdQHhFAWiqau";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{pem_body}\n-----END PRIVATE KEY-----");
    let cert = w.path("tls.crt");
    let key_flag = format!("--tls-key={pem}");
    let run = serve(&["--tls-cert", &cert, &key_flag]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("not shown"), "{run}");
    assert!(!run.stderr.contains(&pem_body[10..30]), "PEM echoed\n{run}");

    let text = format!("ed25519-private/{secret}");
    for key in [text.as_str(), secret.as_str()] {
        let audit = w.path("audit-store");
        let run = serve(&["--audit-store", &audit, "--audit-key", key]);
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains("not shown"), "{run}");
        assert_not_echoed(&run, &secret);
        // Nor was a key file made under the secret's name.
        assert!(!w.file(&secret).exists());
    }
}

#[test]
fn a_private_key_the_flag_parser_cannot_take_is_never_echoed() {
    // Found by review: `--tls-key "$(cat tls.key)"` (no `=`) reads as an
    // unknown flag `-----BEGIN…`, and the flag parser's message quoted it
    // whole; so did a key pasted as a stray argument.
    let w = World::new();
    w.keygen("agent");
    let secret = private_hex(&w, "agent");
    let pem_body = "MC4CAQAwBQYDK2VwBCIEIMoZT8kZ5j9W9EIYQdQHhFAWiqau";
    // A padded last line: the flag parser splits an argument at `=` and
    // quoted the part before it.
    let padded = "ZnPp3cu5/gxYJw2wHDSkZq6UjsCXkCbKvT2wLM2Fb6rw4sNgS8Q=";
    let pem =
        format!("-----BEGIN PRIVATE KEY-----\n{pem_body}\n{padded}\n-----END PRIVATE KEY-----");
    let text = format!("ed25519-private/{secret}");
    let runs = [
        mandate(&["serve", "--listen", "127.0.0.1:0", "--tls-key", &pem]),
        mandate(&["inspect", &pem]),
        mandate(&["inspect", &text]),
        mandate(&["keygen", "--out", "k", &secret]),
        // Key text where a configuration file belongs.
        mandate(&["serve", "--config", &text]),
    ];
    for run in &runs {
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains("not shown"), "{run}");
        for part in [&pem_body[10..30], &padded[..16], &padded[20..36]] {
            assert!(!run.stderr.contains(part), "PEM echoed\n{run}");
        }
        assert_not_echoed(run, &secret);
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
    }
    // A mistyped flag with nothing secret in it is still quoted, as before.
    let run = mandate(&["inspect", "--no-such-flag"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("--no-such-flag"), "{run}");
}

#[test]
fn a_private_key_file_readable_by_group_or_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;

    let w = World::new();
    let secret = private_hex(&w, "root");
    let root = w.root_key();
    let issue = || issue_dave(&w, &[]);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(w.file("root"), std::fs::Permissions::from_mode(mode)).unwrap();
        let run = issue();
        run.error(&format!(
            "permissions {mode:04o} for {root} are too open: a private key must be \
             readable by its owner only (chmod 600)"
        ));
        assert_not_echoed(&run, &secret);
    }
    std::fs::set_permissions(w.file("root"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let token = issue().ok_trimmed();

    // Every command that reads a private key applies the same rule.
    std::fs::set_permissions(w.file("root"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = vec!["pop", "--key", &root, "--token", &token];
    args.extend(request_flags("expenses", "read", "/r"));
    mandate(&args).error("are too open");
    mandate(&[
        "delegate",
        "--token",
        &token,
        "--signer-key",
        &root,
        "--operation",
        "read",
    ])
    .error("are too open");
}

#[test]
fn duration_flags_are_capped_with_an_error_naming_the_maximum() {
    let w = World::new();
    let root_pub = w.root_pub();
    let issue = |ttl: &str| issue_dave(&w, &["--ttl", ttl]);
    issue("100years").error("ttl must be between 1s and 30days");
    issue("0s").error("ttl must be between 1s and 30days");
    let token = issue("10m").ok_trimmed();

    // A huge delegated lifetime is refused, never an overflow.
    mandate(&["delegate", "--token", &token, "--ttl", "500000000000years"])
        .error("--ttl 500000000000years is too long: the maximum is 30days");
    mandate(&["delegate", "--token", &token, "--ttl", "31days"])
        .error("--ttl 31days is too long: the maximum is 30days");

    let authorize = |flags: &[&str]| {
        let mut args = vec!["authorize", "--root-pub", &root_pub, "--token", &token];
        args.extend(request_flags("expenses", "read", "/r"));
        args.extend_from_slice(flags);
        mandate(&args)
    };
    authorize(&["--pop-window", "100years"])
        .error("--pop-window 100years is too long: the maximum is 10m");
    authorize(&["--pop-window", "11m"]).error("the maximum is 10m");
    authorize(&["--pop-window", "0s"]).error("--pop-window 0s is too short: the minimum is 1s");
    assert!(authorize(&["--pop-window", "10m"])
        .ok()
        .starts_with("ALLOW"));
    authorize(&["--staleness", "100years"])
        .error("--staleness 100years is too long: the maximum is 1day");

    // The servers refuse before they listen.
    let store = w.path("store");
    for flags in [
        ["--pop-window", "100years"],
        ["--staleness", "2days"],
        ["--heartbeat", "2h"],
    ] {
        let mut args = vec![
            "serve",
            "--store",
            &store,
            "--listen",
            "127.0.0.1:0",
            "--root-pub",
            &root_pub,
        ];
        args.extend_from_slice(&flags);
        mandate(&args).error(&format!("{} {} is too long", flags[0], flags[1]));
    }
}

#[test]
fn a_new_key_is_never_written_through_a_link_planted_at_its_public_half() {
    // Found by attack: `KEY.pub` as a link to a path that did not exist yet
    // was followed, creating a file wherever the link pointed.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    let target = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, dir.path().join("agent.key.pub")).unwrap();
    let run = mandate(&["keygen", "--out", key.to_str().unwrap()]);
    run.error("agent.key.pub");
    assert!(!target.exists(), "the link was followed\n{run}");
    assert!(
        !key.exists(),
        "a private key without its public half\n{run}"
    );
}
