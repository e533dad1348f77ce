"""TLS: the certificate and key `antal serve` and `antal hub serve` answer with, and the
certificate authority a client (a node agent, `antal hub count`) trusts for a hub.

    uvicorn.run(app, **server_tls(settings.tls_cert, settings.tls_key))
    httpx.Client(base_url=url, verify=client_verify(ca_cert))

Both check their files before anything listens or connects, so that a missing key, an
unreadable file or a key that is not the certificate's is a message at start-up, not a
server that answers in plain text or a traceback from inside uvicorn.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_verify", "server_tls", "untrusted"]


def server_tls(cert: Path | None, key: Path | None) -> dict[str, str]:
    """uvicorn's options for TLS (`ssl_certfile`, `ssl_keyfile`), or none without a
    certificate. ValueError, saying which, for a certificate without a key (or a key
    without a certificate), a file that cannot be read, or a pair that does not load."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        given, missing = ("tls_key", "tls_cert") if cert is None else ("tls_cert", "tls_key")
        raise ValueError(
            f"{given} is set but {missing} is not: TLS needs both the certificate "
            "(--tls-cert FILE) and its private key (--tls-key FILE)"
        )
    for what, path in (("certificate", cert), ("key", key)):
        _readable(what, path)
    try:  # the pair as uvicorn will load it: PEM, and the key the certificate's
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key, password=_encrypted)
    except ssl.SSLError as e:
        why = ("the key is not the certificate's" if e.reason == "KEY_VALUES_MISMATCH"
               else "one of them is not PEM, or not of its kind")  # fmt: skip
        raise ValueError(
            f"TLS: {cert} and {key} are not a certificate and its private key: {why}"
        ) from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def client_verify(ca_cert: Path | None) -> ssl.SSLContext | bool:
    """httpx's `verify`: the system's trusted authorities (True), or with `ca_cert` an
    SSL context that trusts that certificate authority (a PEM file: an internal CA, or a
    self-signed certificate itself). Host names are checked either way."""
    if ca_cert is None:
        return True
    _readable("CA certificate", ca_cert)
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except ssl.SSLError:
        raise ValueError(f"TLS: {ca_cert} is not a PEM certificate") from None


def untrusted(e: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a connection error (httpx wraps it),
    or None: a server whose certificate is not trusted is said as such, and not retried
    as if it were down."""
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    return cause


def _encrypted() -> str:
    # asked only for an encrypted key: a service cannot type its pass phrase at start-up
    raise ValueError(
        "TLS: the private key is encrypted; give it unencrypted (readable by the service's "
        "user only: chmod 600)"
    )


def _readable(what: str, path: Path) -> None:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as e:
        raise ValueError(f"TLS {what} {path}: {e.strerror or e}") from None
