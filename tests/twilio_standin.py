"""A stand-in for Twilio where it behaves as this service does not: /Media redirects to
a presigned S3 URL, and with customer-key encryption that object is AES-256-CBC
ciphertext whose RSA-wrapped key and IV ride in x-amz-meta-x-amz-key and -iv
(Twilio's documented layout; its own decrypter reads exactly these). Written from
Twilio's documentation: a list page's shape, Basic auth on the API, and a presigned
URL that refuses a second credential, as S3 does."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.sids import mint


@dataclass(frozen=True)
class Encrypted:
    ciphertext: bytes
    wrapped_key: str  # base64
    iv: str  # base64


def encrypt(plaintext: bytes, public_key: RSAPublicKey) -> Encrypted:
    key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    wrapped = public_key.encrypt(key, rsa_padding.PKCS1v15())
    return Encrypted(ciphertext, base64.b64encode(wrapped).decode(), base64.b64encode(iv).decode())


class TwilioStandIn:
    def __init__(self, account_sid: str, auth_token: str, stored: Encrypted) -> None:
        self.account_sid, self.auth_token, self.stored = account_sid, auth_token, stored
        self.sid, self.source_sid = mint("RT"), mint("MT")
        self.grouping = {"room_sid": mint("RM"), "participant_sid": mint("PA")}
        self.credentials_sent_to_s3 = 0

    def recording(self, base: str) -> dict[str, Any]:
        url = f"{base}/v1/Recordings/{self.sid}"
        return {
            "account_sid": self.account_sid, "status": "completed",
            "date_created": "2024-03-01T10:00:00Z", "sid": self.sid,
            "source_sid": self.source_sid, "size": len(self.stored.ciphertext), "url": url,
            "type": "audio", "duration": 3, "container_format": "mka", "codec": "OPUS",
            "grouping_sids": self.grouping,
            "track_name": "microphone", "offset": 1500,
            "media_external_location": None, "status_callback": None,
            "status_callback_method": "POST", "links": {"media": f"{url}/Media"},
        }  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/Recordings", self.list)
        app.router.add_get("/v1/Recordings/{sid}/Media", self.media)
        app.router.add_get("/bucket/{sid}", self.s3_object)
        return app

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"code": 20003, "status": 401}, status=401)
        base = f"{request.scheme}://{request.host}"
        wanted = request.query.get("Status", "completed")
        page = [self.recording(base)] if wanted == "completed" else []
        url = f"{base}/v1/Recordings?PageSize=50&Page=0"
        meta = {
            "page": 0, "page_size": 50, "first_page_url": url, "previous_page_url": None,
            "url": url, "next_page_url": None, "key": "recordings",
        }  # fmt: skip
        return web.json_response({"recordings": page, "meta": meta})

    async def media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"code": 20003, "status": 401}, status=401)
        link = f"{request.scheme}://{request.host}/bucket/{self.sid}?X-Amz-Signature=0f0f"
        return web.json_response({"redirect_to": link}, status=302, headers={"Location": link})

    async def s3_object(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            self.credentials_sent_to_s3 += 1
            return web.Response(status=400, text="Only one auth mechanism allowed")
        headers = {
            "x-amz-meta-x-amz-key": self.stored.wrapped_key,
            "x-amz-meta-x-amz-iv": self.stored.iv,
            "Content-Type": "application/octet-stream",
        }
        return web.Response(body=self.stored.ciphertext, headers=headers)
