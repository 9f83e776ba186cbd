"""Local servers on 127.0.0.1 for the delivery tests, reached through the real client libraries.

- ``GcsEmulator``: gcp-storage-emulator in memory, for google-cloud-storage (``STORAGE_EMULATOR_HOST``).
- ``GcsDenying``: a stand-in answering every Cloud Storage request 403, as a bucket the
  credentials may not use does (the emulator has no permissions to refuse with).
- S3 is moto in server mode (``aws_server.MotoServer``); ``enforce_aws_auth`` makes it check
  credentials and IAM permissions, so that access can be denied.
- ``SmtpServer``: aiosmtpd requiring STARTTLS and AUTH, with a certificate of a test authority
  that ``Certificates`` makes (clients trust it through ``SSL_CERT_FILE``); ``implicit_tls``
  makes it a TLS-from-the-start server (port 465 style) instead.
- ``WebhookServer``: records each POST and answers with ``status`` and ``body``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gcp_storage_emulator.server import create_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound and released at once), for a server that is down."""
    return free_port()


class GcsEmulator:
    def __init__(self) -> None:
        self.port = free_port()
        self._server = create_server("127.0.0.1", self.port, in_memory=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wipe(self) -> None:
        self._server.wipe()

    def __enter__(self) -> GcsEmulator:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()


class _Http:
    """A threaded HTTP server on a free port of 127.0.0.1, serving ``handler``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


class GcsDenying(_Http):
    MESSAGE = ("billing-job@example.iam.gserviceaccount.com does not have storage.objects.list access to the "
               "Google Cloud Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not "
               "exist).")

    def __init__(self) -> None:
        message = self.MESSAGE

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _deny(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"error": {"code": 403, "message": message,
                                             "errors": [{"message": message, "domain": "global",
                                                         "reason": "forbidden"}]}}).encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _deny

        super().__init__(Handler)


def enforce_aws_auth(moto_url: str, enforced: bool) -> None:
    """Make moto check each request's credentials and IAM permissions (or stop checking)."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset-auth", data=b"0" if enforced else b"inf",
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def powerless_credentials(moto_url: str, monkeypatch) -> None:
    """Put the keys of a new IAM user with no permission at all in the environment, and make moto
    check every request's (``enforce_aws_auth``; the caller turns it off again)."""
    import boto3

    iam = boto3.client("iam", endpoint_url=moto_url, region_name="us-east-1")
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    enforce_aws_auth(moto_url, True)


class Certificates(NamedTuple):
    """A test certificate authority (``authority``, to trust) and a server certificate it signed
    for localhost and 127.0.0.1 (``certificate``, ``key``), as PEM files."""

    authority: Path
    certificate: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> Certificates:
        now = dt.datetime.now(dt.timezone.utc)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "billing tests authority")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        paths = cls(folder / "authority.pem", folder / "server.pem", folder / "server.key")
        paths.authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        paths.certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return paths

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


class Received(NamedTuple):
    """One message the SMTP server accepted: envelope, raw content, and how the client got there."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    tls: bool
    login: str | None


class SmtpServer:
    """aiosmtpd on a free port: STARTTLS required before AUTH and mail (``implicit_tls=False``),
    or TLS from the first byte; AUTH required, with ``username`` and ``password``."""

    def __init__(self, certificates: Certificates, username: str, password: str, implicit_tls: bool = False):
        self.received: list[Received] = []
        self.logins: list[tuple[str, bool]] = []  # (login, accepted) per AUTH attempt
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope) -> str:
                login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
                tls = smtp.transport.get_extra_info("ssl_object") is not None
                server.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content
                                                or envelope.content, tls, login))
                return "250 OK"

        def authenticate(smtp, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
                  and auth_data.password.decode() == password)
            server.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "", ok))
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        self.port = free_port()
        tls = certificates.server_context()
        if implicit_tls:
            options = {"ssl_context": tls, "auth_require_tls": False}  # aiosmtpd sees only STARTTLS as TLS
        else:
            options = {"tls_context": tls, "require_starttls": True}
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticate,
                                      auth_required=True, **options)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


class Post(NamedTuple):
    path: str
    content_type: str
    body: dict


class WebhookServer(_Http):
    """Records each POST (path, content type, JSON body) and answers ``status`` with ``body``."""

    def __init__(self, status: int = 200, body: bytes = b"ok") -> None:
        self.posts: list[Post] = []
        self.status, self.body = status, body
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.posts.append(Post(self.path, self.headers.get("Content-Type", ""), json.loads(raw)))
                self.send_response(server.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        super().__init__(Handler)
