"""Revocations: a local store the embedded verifier consults."""

import pytest

import mandate


def test_revoking_the_task_denies_the_next_call(tmp_path, issuer, orchestrator, bob_token):
    store = mandate.RevocationStore(tmp_path / "store", create=True)
    verifier = mandate.Verifier([issuer.root_arg], revocations=store)
    assert verifier.checks_revocation

    def call():
        pop = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3")
        return verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop)

    assert call().allowed
    entry = store.revoke("task", "q3-report", reason="kill switch")
    assert entry["seq"] == 1
    decision = call()
    assert not decision.allowed
    assert decision.reason_kind == "revoked"
    assert "q3-report" in decision.reason


def test_store_errors(tmp_path):
    with pytest.raises(mandate.RegistryError, match="does not exist"):
        mandate.RevocationStore(tmp_path / "missing")
    store = mandate.RevocationStore(tmp_path / "s", create=True)
    with pytest.raises(mandate.RegistryError):
        store.revoke("planet", "earth")
