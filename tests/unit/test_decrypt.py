"""Unwrapping a Twilio customer key's content key (PKCS#1 v1.5) for AES-CBC."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.twilio_import.decrypt import WRONG_KEY, CannotDecrypt, content_key

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def wrapped(secret: bytes) -> str:
    return base64.b64encode(KEY.public_key().encrypt(secret, padding.PKCS1v15())).decode()


@pytest.mark.parametrize("size", [16, 24, 32])
def test_a_content_key_of_an_aes_cbc_size_is_unwrapped(size: int) -> None:
    secret = bytes(range(size))
    assert content_key(KEY, wrapped(secret)) == secret


@pytest.mark.parametrize("size", [0, 15, 48, 64])
def test_any_other_size_is_a_wrong_key(size: int) -> None:
    # 64 bytes is AES-XTS's 512 bits, which the AES algorithm takes and CBC does not:
    # what implicit rejection answers a wrong key with may be that long.
    with pytest.raises(CannotDecrypt) as refused:
        content_key(KEY, wrapped(bytes(size)))
    assert refused.value.message == WRONG_KEY
