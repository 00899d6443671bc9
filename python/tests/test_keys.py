"""Keys: generation, 0600 files, and no secret in any repr."""

import os
import stat

import pytest

import mandate


def test_secret_key_repr_shows_only_the_public_half(tmp_path):
    key = mandate.SecretKey.generate()
    path = tmp_path / "agent.key"
    key.write(path)
    secret_text = path.read_text().strip()
    assert secret_text.startswith("ed25519-private/")
    hex_secret = secret_text.split("/", 1)[1]
    for shown in (repr(key), str(key), f"{key}", repr([key])):
        assert hex_secret not in shown
        assert "redacted" in shown
    assert str(key.public_key) in repr(key)
    issuer = mandate.Issuer.generate(7)
    assert "redacted" in repr(issuer) and "key_id=7" in repr(issuer)


def test_key_files_are_0600_and_never_overwritten(tmp_path):
    key = mandate.SecretKey.generate()
    path = tmp_path / "agent.key"
    key.write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (tmp_path / "agent.key.pub").read_text().strip() == str(key.public_key)
    with pytest.raises(mandate.KeyFileError):
        mandate.SecretKey.generate().write(path)
    assert mandate.SecretKey.read(path).public_key == key.public_key


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "agent.key"
    mandate.SecretKey.generate().write(path)
    os.chmod(path, 0o644)
    with pytest.raises(mandate.KeyPermissionsError, match="too open"):
        mandate.SecretKey.read(path)


def test_public_keys_parse_and_compare(tmp_path):
    key = mandate.SecretKey.generate()
    text = str(key.public_key)
    assert mandate.PublicKey(text) == key.public_key
    assert hash(mandate.PublicKey(text)) == hash(key.public_key)
    key.write(tmp_path / "k")
    assert mandate.PublicKey(str(tmp_path / "k.pub")) == key.public_key
    with pytest.raises(mandate.InvalidKeyError):
        mandate.PublicKey("ed25519/zz")
    with pytest.raises(mandate.MandateError):
        mandate.SecretKey.read(tmp_path / "missing.key")


def test_a_private_key_passed_in_the_wrong_place_is_never_echoed(tmp_path, issuer, orchestrator, bob_token):
    # Found by attack: messages and reprs quoted such an argument whole.
    key = mandate.SecretKey.generate()
    key.write(str(tmp_path / "k.key"))
    secret = (tmp_path / "k.key").read_text().strip()
    digits = secret.split("/", 1)[1]
    calls = [
        lambda: bob_token.delegate(checks=[secret]),
        lambda: bob_token.delegate(attr_max=[secret]),
        lambda: bob_token.delegate(url_hosts=[secret]),
        lambda: issuer.issue(principal="bob", agent="o", rights=[secret], ttl="1h"),
        lambda: issuer.issue(principal="bob", agent="o", rights=["a:read"], ttl=secret),
        lambda: mandate.RevocationStore(secret),
        lambda: repr(mandate.IssuerClient("http://" + secret)),
    ]
    for call in calls:
        try:
            shown = str(call())
        except mandate.MandateError as error:
            shown = str(error)
        assert digits[:8] not in shown, shown
        assert "<redacted>" in shown, shown
