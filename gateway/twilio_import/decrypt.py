"""Media Twilio stored encrypted with a customer key: AES-256-CBC with PKCS#7 padding,
its content key RSA-wrapped (PKCS#1 v1.5) with the customer's public key. The wrapped
key and the IV come base64 in the object's x-amz-meta-x-amz-key and -iv headers, as
Twilio's own decrypter reads them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.errors import GatewayError


class CannotDecrypt(GatewayError):
    """Encrypted media this run cannot read: no key given, or not the right one."""


CBC_KEY_BITS: Final = (128, 192, 256)
# RSA decryption with another key does not always fail outright: OpenSSL answers
# PKCS#1 v1.5 padding errors with random bytes (implicit rejection), caught later as a
# key of the wrong size or padding that does not check out.
WRONG_KEY: Final = "the media does not decrypt with --decrypt-key: it was encrypted for another key"


def private_key(path: Path) -> RSAPrivateKey:
    """The account's RSA private key, PEM (PKCS#8 or PKCS#1), unencrypted."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise GatewayError(f"--decrypt-key {path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, RSAPrivateKey):
        raise GatewayError(f"--decrypt-key {path}: not an RSA key")
    return key


def content_key(key: RSAPrivateKey, wrapped: str) -> bytes:
    try:
        secret = key.decrypt(base64.b64decode(wrapped, validate=True), rsa_padding.PKCS1v15())
    except (ValueError, binascii.Error):
        raise CannotDecrypt(WRONG_KEY) from None
    # AES-CBC's key sizes: `algorithms.AES.key_sizes` also has XTS's 512 bits, which a
    # random answer of 64 bytes would pass, and CBC refuse.
    if len(secret) * 8 not in CBC_KEY_BITS:
        raise CannotDecrypt(WRONG_KEY)
    return secret


async def decrypted(
    chunks: AsyncIterable[bytes], key: RSAPrivateKey, wrapped: str, iv: str
) -> AsyncIterator[bytes]:
    """The plaintext of an AES-CBC stream, piece by piece."""
    secret = content_key(key, wrapped)
    try:
        decryptor = Cipher(algorithms.AES(secret), modes.CBC(base64.b64decode(iv))).decryptor()
    except (ValueError, binascii.Error):
        raise CannotDecrypt("the stored IV is not AES-CBC's") from None
    unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
    async for chunk in chunks:
        if plain := unpadder.update(decryptor.update(chunk)):
            yield plain
    try:
        last = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise CannotDecrypt(WRONG_KEY) from None
    if last:
        yield last
