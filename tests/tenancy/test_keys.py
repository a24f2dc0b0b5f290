from __future__ import annotations

import hashlib

import pytest

from tollway.tenancy import keys


def test_generate_parse_roundtrip() -> None:
    new = keys.generate("live")
    assert new.plain.startswith(f"tw_live_{new.lookup_id}_")
    assert len(new.lookup_id) == keys.LOOKUP_LENGTH
    assert new.digest_hex == hashlib.sha256(new.plain.encode()).hexdigest()
    assert new.plain.endswith(new.last4)
    parsed = keys.parse(new.plain)
    assert parsed is not None and parsed.lookup_id == new.lookup_id and parsed.environment == "live"
    assert keys.matches(bytes.fromhex(new.digest_hex), parsed.digest)


def test_test_keys_and_uniqueness() -> None:
    generated = {keys.generate("test").plain for _ in range(200)}
    assert len(generated) == 200
    assert all(k.startswith("tw_test_") for k in generated)
    with pytest.raises(ValueError):
        keys.generate("prod")


@pytest.mark.parametrize("presented", [
    "", "sk-123", "tw_live_", "tw_prod_abcdefghijkl_" + "a" * 32, "tw_live_short_" + "a" * 32,
    "tw_live_abcdefghijkl_" + "a" * 31, "tw_live_abcdefghijkl_" + "a" * 33, "tw_live_abcdefghijk!_" + "a" * 32,
    "tw_live_abcdefghijkl" + "a" * 33, "tw_live_abcdefghijkl_" + "a" * 31 + "-",
])
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert keys.parse(presented) is None


def test_wrong_secret_does_not_match() -> None:
    new = keys.generate()
    forged = new.plain[:-1] + ("a" if new.plain[-1] != "a" else "b")
    parsed = keys.parse(forged)
    assert parsed is not None and parsed.lookup_id == new.lookup_id
    assert not keys.matches(bytes.fromhex(new.digest_hex), parsed.digest)


def test_header_forms() -> None:
    assert keys.from_header(b"Bearer tw_live_x") == "tw_live_x"
    assert keys.from_header(b"bearer   tw_live_x ") == "tw_live_x"
    assert keys.from_header(b"tw_live_x") == "tw_live_x"


def test_display_hides_the_secret() -> None:
    new = keys.generate()
    shown = keys.display(new.lookup_id, "live", new.last4)
    secret = new.plain.rsplit("_", 1)[1]
    assert secret not in shown and shown.startswith(f"tw_live_{new.lookup_id}_")
