"""Tokens: inspect, delegate (unsigned and signed hops), prove, authorize."""

import time

import pytest

import mandate


def test_inspect_reports_claims_and_verification(issuer, bob_token):
    report = bob_token.inspect([issuer.root_arg])
    assert report["signature"]["status"] == "valid"
    assert report["principal"] == "bob"
    assert report["task"] == "q3-report"
    assert report["chain"] == ["orchestrator"]
    assert sorted(report["rights"]) == ["analytics:export", "analytics:read"]
    assert bob_token.inspect()["signature"]["status"] == "not_checked"
    other = mandate.Issuer.generate(1)
    assert bob_token.inspect([other.root_arg])["signature"]["status"] == "invalid"


def test_token_repr_is_a_fingerprint(bob_token):
    assert bob_token.text not in repr(bob_token)
    assert bob_token.fingerprint in repr(bob_token)
    assert mandate.Token(bob_token.text + "\n").digest == bob_token.digest
    assert bob_token.token_id == bob_token.revocation_ids[-1]
    assert bob_token.root_id == bob_token.revocation_ids[0]


def test_signed_hop_then_authorize_inside_and_outside_the_slice(issuer, orchestrator, analytics, bob_token):
    child = bob_token.delegate(
        signer=orchestrator,
        to="analytics",
        to_key=analytics.public_key,
        operations=["read"],
        resource_prefixes=["/datasets/q3"],
    )
    assert child.block_count == 2
    verifier = mandate.Verifier([issuer.root_arg], require_pop=True)

    pop = child.prove(analytics, "analytics", "read", "/datasets/q3/revenue")
    decision = verifier.authorize(child, "analytics", "read", "/datasets/q3/revenue", pop=pop)
    assert decision.allowed and bool(decision)
    assert decision.principal == "bob"
    assert decision.chain == ["orchestrator", "analytics"]
    assert decision.agent == "analytics" and decision.depth == 1
    assert decision.to_dict()["reason"]["kind"] == "allowed"

    pop = child.prove(analytics, "analytics", "export", "/datasets/q3/revenue")
    decision = verifier.authorize(child.text, "analytics", "export", "/datasets/q3/revenue", pop=pop)
    assert not decision.allowed
    assert decision.reason_kind == "failed_checks"
    assert "block 1 (by agent orchestrator)" in decision.reason
    assert decision.failed_checks[0]["block"] == 1
    assert decision.failed_checks[0]["author"] == "agent orchestrator"


def test_a_stolen_token_without_its_key_is_refused(issuer, orchestrator, analytics, bob_token):
    child = bob_token.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key)
    verifier = mandate.Verifier([issuer.root_arg], require_pop=True)
    thief = mandate.SecretKey.generate()
    pop = child.prove(thief, "analytics", "read", "/datasets/q3/revenue")
    decision = verifier.authorize(child, "analytics", "read", "/datasets/q3/revenue", pop=pop)
    assert not decision.allowed and decision.reason_kind == "proof_of_possession"
    decision = verifier.authorize(child, "analytics", "read", "/datasets/q3/revenue")
    assert not decision.allowed and decision.reason_kind == "proof_of_possession"


def test_a_replayed_proof_is_refused(issuer, orchestrator, bob_token):
    verifier = mandate.Verifier([issuer.root_arg])
    pop = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3")
    assert verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop).allowed
    again = verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop)
    assert not again.allowed and "replayed" in again.reason


def test_unsigned_restrictions_and_attributes(issuer, orchestrator, bob_token):
    narrowed = bob_token.delegate(operations=["read"], attr_max=["rows=100"], ttl="5m")
    verifier = mandate.Verifier([issuer.root_arg])
    at = time.time()
    pop = narrowed.prove(orchestrator, "analytics", "read", "/d", {"rows": 50}, at=at)
    assert verifier.authorize(narrowed, "analytics", "read", "/d", {"rows": 50}, pop=pop, at=at).allowed
    pop = narrowed.prove(orchestrator, "analytics", "read", "/d", {"rows": "500"}, at=at)
    decision = verifier.authorize(narrowed, "analytics", "read", "/d", {"rows": "500"}, pop=pop, at=at)
    assert not decision.allowed and "rows" in decision.reason


def test_policy_and_errors(issuer, orchestrator, bob_token):
    policy = mandate.Policy('allow if operation("read");', name="read-only")
    verifier = mandate.Verifier([issuer.public_key], policy)
    assert "read-only" in repr(verifier)
    pop = bob_token.prove(orchestrator, "analytics", "export", "/d")
    decision = verifier.authorize(bob_token, "analytics", "export", "/d", pop=pop)
    assert not decision.allowed and decision.reason_kind == "no_matching_policy"
    with pytest.raises(mandate.DatalogError, match="line 1"):
        mandate.Policy("allow if (((")
    other = mandate.Verifier([f"2={mandate.Issuer.generate().public_key}"])
    with pytest.raises(mandate.UnknownKeyIdError):
        other.authorize(bob_token, "analytics", "read", "/d")


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda t, k, a: t.delegate(), mandate.InvalidArgumentError),
        (lambda t, k, a: t.delegate(operations=["write"]), mandate.NotInParentError),
        (lambda t, k, a: t.delegate(signer=a, to="x", to_key=a.public_key), mandate.NotHolderError),
        (lambda t, k, a: t.delegate(to="x", to_key=a.public_key), mandate.InvalidArgumentError),
        (lambda t, k, a: t.delegate(signer=k, to="bad\u200bname", to_key=a.public_key), mandate.InvalidNameError),
        (lambda t, k, a: t.delegate(attr_range=["rows"]), mandate.InvalidArgumentError),
        (lambda t, k, a: t.delegate(checks=["check if (((("]), mandate.DatalogError),
        (lambda t, k, a: t.delegate(ttl="forever"), mandate.InvalidArgumentError),
        (lambda t, k, a: t.delegate(ttl=-1.0), mandate.InvalidArgumentError),
        (lambda t, k, a: t.prove(k, "analytics", "read", "/a/../b"), mandate.InvalidArgumentError),
        (lambda t, k, a: mandate.Token("not a token"), mandate.MalformedTokenError),
        (lambda t, k, a: mandate.Token(""), mandate.MalformedTokenError),
        (lambda t, k, a: mandate.Token("A" * 100_000), mandate.MalformedTokenError),
    ],
)
def test_bad_input_raises_one_clear_error(bob_token, orchestrator, analytics, call, error):
    with pytest.raises(error) as raised:
        call(bob_token, orchestrator, analytics)
    assert isinstance(raised.value, mandate.MandateError)
    assert str(raised.value) and "\n" not in str(raised.value)


def test_wrong_types_raise_type_errors_not_crashes(bob_token):
    with pytest.raises(TypeError):
        bob_token.delegate(operations="read" * 0 or 5)
    with pytest.raises(TypeError):
        mandate.Verifier([42])


def test_an_expired_token_cannot_be_judged(issuer, orchestrator):
    token = issuer.issue(principal="bob", agent="orchestrator", agent_key=orchestrator.public_key,
                         rights=["analytics:read"], ttl=1)
    verifier = mandate.Verifier([issuer.root_arg])
    with pytest.raises(mandate.TokenExpiredError):
        verifier.authorize(token, "analytics", "read", "/d", at=time.time() + 3600)


@pytest.mark.parametrize("at", [1e30, 2.0**64, 2**64])
def test_a_time_out_of_range_is_an_invalid_argument_not_a_panic(issuer, orchestrator, bob_token, at):
    # Found by attack: a panic crossed into Python as PanicException, which
    # `except Exception` does not catch.
    verifier = mandate.Verifier([issuer.root_arg])
    with pytest.raises(mandate.InvalidArgumentError, match="out of range"):
        bob_token.prove(orchestrator, "analytics", "read", "/d", at=at)
    with pytest.raises(mandate.InvalidArgumentError, match="out of range"):
        verifier.authorize(bob_token, "analytics", "read", "/d", at=at)


def test_a_call_judged_at_a_later_time_forgets_no_earlier_proof(issuer, orchestrator, bob_token):
    # Found by attack: the replay cache forgot nonces by the request's time,
    # so one "as of later" call let every earlier proof be used again.
    verifier = mandate.Verifier([issuer.root_arg], require_pop=True)
    pop = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3")
    assert verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop).allowed
    later = time.time() + 300  # past the proof window, within the token's ten minutes
    ahead = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3", at=later)
    assert verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=ahead, at=later).allowed
    again = verifier.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop)
    assert not again.allowed and "replayed" in again.reason


def test_a_bool_is_neither_an_attribute_number_nor_a_duration(issuer, orchestrator, bob_token):
    # Python's False is also 0: it would pass `attr_max amount=0` unnoticed.
    narrowed = bob_token.delegate(attr_max=["amount=0"])
    with pytest.raises(TypeError, match="bool"):
        narrowed.prove(orchestrator, "analytics", "read", "/d", {"amount": False})
    with pytest.raises(TypeError, match="bool"):
        mandate.Verifier([issuer.root_arg]).authorize(narrowed, "analytics", "read", "/d", {"amount": False})
    with pytest.raises(TypeError, match="bool"):
        bob_token.delegate(ttl=True)


def test_a_verifier_may_refuse_proofs_made_before_it_started(issuer, orchestrator, bob_token):
    # A restarted verifier's replay memory is empty: a proof captured before
    # the restart would be taken again within its window.
    first = mandate.Verifier([issuer.root_arg])
    pop = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3")
    assert first.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop).allowed
    time.sleep(0.01)
    restarted = mandate.Verifier([issuer.root_arg], refuse_proofs_from_before_start=True)
    again = restarted.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=pop)
    assert not again.allowed and again.reason_kind == "proof_of_possession", again.reason
    fresh = bob_token.prove(orchestrator, "analytics", "read", "/datasets/q3")
    assert restarted.authorize(bob_token, "analytics", "read", "/datasets/q3", pop=fresh).allowed
