"""``IssuerClient`` against the real issuer: ``mandate issuer serve`` trusting
a local identity provider (the key set and keys in ``tests/fixtures/idp/``,
test only), revoking closed tasks at a ``mandate serve`` that also decides.

A person's login (an RS256 ID token signed here with PyJWT) is exchanged for
a task's mandate; the refreshed mandate is allowed by the embedded verifier
and by ``mandate serve``; a wrong key's refresh, a sub-agent's and a refresh
after close raise the mapped exceptions; closing the task denies its tokens.
"""

from __future__ import annotations

import time

import pytest

import mandate
from mandate.client import AuthorizationClient
from conftest import REPO, running

jwt = pytest.importorskip("jwt", reason="PyJWT (pip install 'pyjwt[crypto]') is not installed")

IDP = "https://idp.test"
AUDIENCE = "mandate-issuer"
ISSUER_ID = "urn:test:mandate-issuer"
FIXTURES = REPO / "tests" / "fixtures" / "idp"


def id_token(email: str, groups: list, **patch) -> str:
    """An ID token from the test provider, signed with its fixture RSA key."""
    now = int(time.time())
    claims = {"iss": IDP, "aud": AUDIENCE, "sub": f"sub-{email}", "email": email,
              "groups": groups, "iat": now, "exp": now + 600, **patch}
    return jwt.encode(claims, (FIXTURES / "rsa.pem").read_bytes(), algorithm="RS256",
                      headers={"kid": "rsa-1"})


@pytest.fixture
def world(tmp_path):
    """``mandate serve`` (verifier and registry) and ``mandate issuer serve``
    revoking closed tasks there; yields (issuer root, issuer URL, serve URL)."""
    root = mandate.Issuer.generate(1)
    root.write(tmp_path / "root.key")
    operator = mandate.SecretKey.generate()
    operator.write(tmp_path / "operator.key")
    ops = root.issue(principal="ops", agent="operator", agent_key=operator.public_key,
                     rights=["registry:revoke", "registry:read"], ttl="1h")
    (tmp_path / "ops.token").write_text(ops.text)
    serve_args = ["serve", "--listen", "127.0.0.1:0", "--store", str(tmp_path / "registry"),
                  "--root-pub", root.root_arg]
    with running(serve_args, tmp_path / "serve.log") as serve:
        issuer_args = [
            "issuer", "serve", "--listen", "127.0.0.1:0", "--id", ISSUER_ID,
            "--root-key", str(tmp_path / "root.key"), "--key-id", "1",
            "--store", str(tmp_path / "tasks"),
            "--registry", serve, "--registry-auth", f"@{tmp_path / 'ops.token'}",
            "--registry-auth-key", str(tmp_path / "operator.key"),
            "--idp", f"{IDP},{AUDIENCE},{FIXTURES / 'jwks.json'}",
        ]
        with running(issuer_args, tmp_path / "issuer.log") as issuer_url:
            yield root, issuer_url, serve


def allowed_by_serve(serve: str, token: mandate.Token, key: mandate.SecretKey) -> bool:
    pop = token.prove(key, "analytics", "read", "/datasets/q3/revenue")
    return AuthorizationClient(serve).authorize(
        token, "analytics", "read", "/datasets/q3/revenue", pop=pop).allowed


def test_open_refresh_close_against_the_real_issuer(world):
    root, issuer_url, serve = world
    agent_key = mandate.SecretKey.generate()
    client = mandate.IssuerClient(issuer_url)
    assert issuer_url in repr(client)

    opened = client.open(agent_key, id_token("alice@example.com", ["staff"]),
                         agent="orchestrator", rights=["analytics:read"], audience=["analytics"],
                         description="Q3 numbers")
    assert opened.task_id.startswith("task-") and opened.scope == ["analytics:read"]
    assert 0 < opened.expires_in <= 300
    assert opened.token.text not in repr(opened)
    claims = opened.token.inspect([root.root_arg])
    assert claims["signature"]["status"] == "valid", claims["signature"]

    # Refresh: a fresh mandate of the same task, allowed by the embedded
    # verifier and by `mandate serve`.
    fresh = client.refresh(opened.task_id, opened.token, agent_key)
    assert isinstance(fresh, mandate.Token)
    assert fresh.token_id != opened.token.token_id
    verifier = mandate.Verifier([root.root_arg], require_pop=True)
    pop = fresh.prove(agent_key, "analytics", "read", "/datasets/q3/revenue")
    decision = verifier.authorize(fresh, "analytics", "read", "/datasets/q3/revenue", pop=pop)
    assert decision.allowed, decision.reason
    assert (decision.principal, decision.chain, decision.task) == (
        "alice@example.com", ["orchestrator"], opened.task_id)
    assert allowed_by_serve(serve, fresh, agent_key)

    # The task's mandate with another key: the proof is not the agent's.
    with pytest.raises(mandate.TaskAuthError) as raised:
        client.refresh(opened.task_id, fresh, mandate.SecretKey.generate())
    assert (raised.value.status, raised.value.code) == (401, "unauthenticated")
    assert isinstance(raised.value, mandate.IssuerError)

    # A sub-agent holding a delegated mandate of the task may not refresh it.
    sub_key = mandate.SecretKey.generate()
    sub = fresh.delegate(signer=agent_key, to="charts", to_key=sub_key.public_key,
                         operations=["read"])
    with pytest.raises(mandate.TaskAuthError) as raised:
        client.refresh(opened.task_id, sub, sub_key)
    assert (raised.value.status, raised.value.code) == (403, "forbidden")
    assert "task's own agent" in str(raised.value)

    # Close: the issuer revokes the task at the registry; every token of it
    # is denied and no refresh is answered any more.
    assert client.close(opened.task_id, fresh, agent_key) is None
    assert not allowed_by_serve(serve, fresh, agent_key)
    assert not allowed_by_serve(serve, sub, sub_key)
    with pytest.raises(mandate.TaskClosedError) as raised:
        client.refresh(opened.task_id, fresh, agent_key)
    assert (raised.value.status, raised.value.code) == (409, "task_closed")


def test_refused_logins_and_unreachable_issuers(world):
    _, issuer_url, _ = world
    client = mandate.IssuerClient(issuer_url)
    key = mandate.SecretKey.generate()
    with pytest.raises(mandate.IssuerError) as raised:
        client.open(key, id_token("alice@example.com", ["staff"], aud="someone-else"),
                    agent="orchestrator", rights=["analytics:read"])
    assert type(raised.value) is mandate.IssuerError
    assert (raised.value.status, raised.value.code) == (400, "invalid_grant")

    with pytest.raises(mandate.InvalidArgumentError):
        client.refresh("task-1", "not a token", key)

    with pytest.raises(mandate.IssuerError) as raised:
        mandate.IssuerClient("http://127.0.0.1:9").refresh(
            "task-1", mandate.Issuer.generate(1).issue(
                principal="bob", agent="a", agent_key=key.public_key, rights=["s:o"], ttl="1m"), key)
    assert (raised.value.status, raised.value.code) == (None, None)
