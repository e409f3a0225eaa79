"""GitHub's side of secret scanning, on 127.0.0.1: a P-256 key pair of its own, its public key served as
GitHub publishes its keys (``/meta/public_keys/secret_scanning``), and alerts signed with the private key
as GitHub signs them. The local stack points GitHubPublicKeysUrl here, so LeakReportFunction verifies
real signatures without the internet; tests and the demo sign with ``signed_alert``."""

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, jsonify

from keygate_local.gateway import FlaskService, Server

KEYS_PATH = "/meta/public_keys/secret_scanning"


class FakeGitHub:
    def __init__(self):
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        public = self._private_key.public_key()
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_identifier = hashlib.sha256(der).hexdigest()
        self.keys_document = {
            "public_keys": [{"key_identifier": self.key_identifier, "key": pem.decode("ascii"), "is_current": True}]
        }
        self.app = Flask(__name__)
        self.app.add_url_rule(KEYS_PATH, "keys", lambda: jsonify(self.keys_document))
        self.keys_url: str | None = None  # once served

    def serve(self, host: str = "127.0.0.1") -> Server:
        """Serve the keys on a free port of ``host`` (``keys_url``); stop the returned server when done."""
        server = Server(lambda _port: FlaskService(self.app), host, 0).start()
        self.keys_url = server.url + KEYS_PATH
        return server

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self._private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode("ascii")

    def signed_alert(self, *tokens: str, url: str = "https://github.com/octocat/demo/blob/main/.env") -> tuple:
        """(body, headers) of an alert reporting ``tokens``, signed as GitHub signs one."""
        alerts = [{"token": token, "type": "keygate_api_key", "url": url, "source": "content"} for token in tokens]
        body = json.dumps(alerts).encode()
        return body, self.headers(body)

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": self.key_identifier,
            "Github-Public-Key-Signature": self.sign(body),
        }
