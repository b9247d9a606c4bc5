"""TLS for the client: the SSL context from its options, and the subject of a certificate for error messages.

No asyncio here: the asyncio transports and the blocking driver of ``mqttchat pub``/``sub`` use it alike.
"""

from __future__ import annotations

import os
import ssl

from mqttchat.client.errors import TLSError
from mqttchat.client.options import TLSOptions


def make_ssl_context(options: TLSOptions | None) -> ssl.SSLContext:
    """An SSL context for the client from ``options`` (system trust store when no CA file is given)."""
    options = options or TLSOptions()
    for what, path in (("CA", options.ca_file), ("certificate", options.cert_file), ("key", options.key_file)):
        if path is not None and not os.path.isfile(path):
            raise TLSError(f"cannot read TLS file {path} ({what}): no such file")
    try:
        context = ssl.create_default_context(cafile=options.ca_file)
        if options.cert_file:
            context.load_cert_chain(options.cert_file, options.key_file, options.key_password)
    except FileNotFoundError as exc:
        raise TLSError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None
    except ssl.SSLError as exc:
        raise TLSError(f"cannot load the TLS certificate or key: {exc.reason or exc}") from None
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.alpn:
        context.set_alpn_protocols(list(options.alpn))
    return context


def unverified_context() -> ssl.SSLContext:
    """A context that accepts any certificate: to read the subject of one that failed verification."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def certificate_subject(der: bytes | None) -> str | None:
    """The subject of a DER certificate as RFC 4514 text, or None (none given, unreadable, no cryptography)."""
    if not der:
        return None
    try:
        from cryptography import x509
    except ImportError:
        return None
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return None
