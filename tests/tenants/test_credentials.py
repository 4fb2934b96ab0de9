from tenants.credentials import credential_generate, credential_parse, hash_secret, secret_matches


def test_generated_token_parses_back_to_its_prefix_and_secret() -> None:
    prefix, secret_hash, full = credential_generate("mlk")
    kind, parsed_prefix, secret = credential_parse(full)  # type: ignore[misc]
    assert (kind, parsed_prefix) == ("mlk", prefix)
    assert prefix.startswith("mlk_") and len(prefix) == 16
    assert secret_matches(secret, secret_hash)
    assert hash_secret(secret) == secret_hash


def test_the_secret_is_not_in_the_stored_hash_or_prefix() -> None:
    prefix, secret_hash, full = credential_generate("mlg")
    secret = full.rsplit("_", 1)[1]
    assert secret not in secret_hash and secret not in prefix


def test_malformed_tokens_do_not_parse() -> None:
    _p, _h, full = credential_generate("mlt")
    assert credential_parse(full + "x") is None
    assert credential_parse("mlx" + full[3:]) is None
    assert credential_parse(full.replace("_", "-")) is None
    assert credential_parse("") is None
    assert credential_parse("mlk_" + "a" * 12 + "_" + "é" * 40) is None


def test_a_wrong_secret_does_not_match() -> None:
    _p, secret_hash, _full = credential_generate("mlk")
    assert not secret_matches("x" * 40, secret_hash)
