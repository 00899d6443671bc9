"""The HTTP clients against a real `mandate serve` (the Rust binary)."""

from __future__ import annotations

import pytest

import mandate
from mandate.client import ApiError, AuthorizationClient
from conftest import running


@pytest.fixture
def server(tmp_path, issuer):
    args = ["serve", "--listen", "127.0.0.1:0", "--root-pub", issuer.root_arg,
            "--store", str(tmp_path / "store")]
    with running(args, tmp_path / "serve.log") as url:
        yield url


def test_authorize_over_http(server, orchestrator, analytics, bob_token):
    client = AuthorizationClient(server)
    child = bob_token.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key,
                               operations=["read"], resource_prefixes=["/datasets/q3"])
    pop = child.prove(analytics, "analytics", "read", "/datasets/q3/revenue")
    decision = client.authorize(child, "analytics", "read", "/datasets/q3/revenue", pop=pop)
    assert decision.allowed and decision.chain == ["orchestrator", "analytics"]

    pop = child.prove(analytics, "analytics", "export", "/datasets/q3/revenue")
    decision = client.authorize(child, "analytics", "export", "/datasets/q3/revenue", pop=pop)
    assert not decision.allowed and decision.reason_kind == "failed_checks"
    assert decision.failed_checks[0]["author"] == "agent orchestrator"

    with pytest.raises(ApiError) as raised:
        client.authorize("not-a-token", "analytics", "read", "/d")
    assert raised.value.status == 401


def test_revoke_through_the_registry(server, tmp_path, issuer, orchestrator, bob_token):
    operator_file = tmp_path / "operator.key"
    mandate.SecretKey.generate().write(operator_file)
    ops = issuer.issue(principal="ops", agent="operator",
                       agent_key=mandate.SecretKey.read(operator_file).public_key,
                       rights=["registry:revoke"], ttl="5m")
    mandate.RegistryClient(server, ops.text, operator_file).revoke("principal", "bob", "left")
    pop = bob_token.prove(orchestrator, "analytics", "read", "/d")
    decision = AuthorizationClient(server).authorize(bob_token, "analytics", "read", "/d", pop=pop)
    assert not decision.allowed and decision.reason_kind == "revoked"
    with pytest.raises(mandate.RegistryError):
        mandate.RegistryClient(server, bob_token.text).revoke("task", "x")


def test_unreachable_server():
    with pytest.raises(ApiError, match="cannot reach"):
        AuthorizationClient("http://127.0.0.1:9", timeout=2).authorize("t", "s", "o", "/r")
