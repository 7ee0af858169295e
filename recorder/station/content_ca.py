"""The station's own certificate authority for C2PA Content Credentials (a redacted copy's
provenance, recorder.station.redact.credentials). C2PA signs with an X.509 certificate, not a
bare key: the station makes a small CA of its own once, and from it one signing certificate.

Files in the station's data directory, each made once (0600, fsynced, never replaced; the
private keys are refused when others may read them, like ``station_key.pem``):

  ``c2pa_ca_key.pem``      the CA's private key (ECDSA P-256)
  ``c2pa_ca.pem``          the CA's self-signed certificate: what a reader of the Content
                           Credentials gives its C2PA validator as a trust anchor
  ``c2pa_signer_key.pem``  the signing certificate's private key (ECDSA P-256, ES256)
  ``c2pa_signer.pem``      the signing certificate, issued by the CA

The certificates follow C2PA's certificate profile (C2PA specification 2.x, section 14.5.1, as
c2pa-rs checks it in ``certificate_profile.rs``): X.509 v3, ECDSA with SHA-256 on P-256, an
authority key identifier on both, a subject key identifier on the CA; the signing certificate
is an end entity (basic constraints CA false) whose key usage is digitalSignature (no
keyCertSign) and whose extended key usage is id-kp-emailProtection and id-kp-documentSigning
(never anyExtendedKeyUsage): the specification's list has both, but c2pa-rs 0.91.3 (in
c2pa-python 0.38.1) refuses a certificate with documentSigning alone ("certificate missing
required EKU"). The CA is a CA (keyCertSign, cRLSign, path length 0: it issues no other CA),
self-signed: a validator takes it as a trust anchor, never inside the file's chain.

Without a trusted time stamp (the station asks no time-stamping authority), a validator checks
the signing certificate's validity at the time it reads the file: the signing certificate is
made valid for 10 years and the CA for 25. This CA vouches for nothing beyond the station
itself: a reader trusts it only after comparing its fingerprint (the SHA-256 of its DER, which
`bwv station redact` prints) out of band, as for the station key.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..private_files import create_private_file_once, make_private_dir
from .errors import StationError

CA_KEY_FILE = "c2pa_ca_key.pem"
CA_CERT_FILE = "c2pa_ca.pem"
SIGNER_KEY_FILE = "c2pa_signer_key.pem"
SIGNER_CERT_FILE = "c2pa_signer.pem"
CA_YEARS, SIGNER_YEARS = 25, 10
_DAY = datetime.timedelta(days=1)
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)
EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION


class ContentCaError(StationError):
    """A CA file that others may read, or that is not what the station made."""

    code = "content_ca"


@dataclass(frozen=True)
class ContentCa:
    """The station's C2PA CA certificate, and the signing certificate and key it issued."""

    ca_cert_pem: bytes
    signer_cert_pem: bytes
    signer_key_pem: bytes
    ca_path: Path

    @property
    def ca_fingerprint(self) -> str:
        """SHA-256 (hex) of the CA certificate's DER: what to compare out of band."""
        der = x509.load_pem_x509_certificate(self.ca_cert_pem).public_bytes(
            serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest()

    @classmethod
    def load_or_create(cls, data_dir: Path, station_id: str,
                       now: datetime.datetime | None = None) -> ContentCa:
        """The CA of the station in ``data_dir``, its keys and certificates made on first use
        (``now``: the certificates' start, the station's clock)."""
        make_private_dir(data_dir)
        now = (now or datetime.datetime.now(datetime.timezone.utc)) - _DAY  # clocks differ
        ca_key = _key(data_dir / CA_KEY_FILE)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{station_id} C2PA CA"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bwv-recorder")])
        ca_path = data_dir / CA_CERT_FILE
        if not ca_path.exists():
            public = ca_key.public_key()
            cert = (_builder(ca_name, ca_name, public, now, CA_YEARS)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(
                        digital_signature=False, content_commitment=False, key_encipherment=False,
                        data_encipherment=False, key_agreement=False, key_cert_sign=True,
                        crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                                   critical=False)
                    .sign(ca_key, hashes.SHA256()))
            create_private_file_once(ca_path, cert.public_bytes(serialization.Encoding.PEM))
        ca_cert = x509.load_pem_x509_certificate(_read(ca_path))
        if ca_cert.public_key() != ca_key.public_key():
            raise ContentCaError(f"{ca_path} is not the certificate of {CA_KEY_FILE}")
        signer_key = _key(data_dir / SIGNER_KEY_FILE)
        signer_path = data_dir / SIGNER_CERT_FILE
        if not signer_path.exists():
            name = x509.Name([
                x509.NameAttribute(NameOID.COMMON_NAME, f"{station_id} content credentials"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bwv-recorder")])
            cert = (_builder(name, ca_name, signer_key.public_key(), now, SIGNER_YEARS)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                   critical=True)
                    .add_extension(x509.KeyUsage(
                        digital_signature=True, content_commitment=False, key_encipherment=False,
                        data_encipherment=False, key_agreement=False, key_cert_sign=False,
                        crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING, EMAIL_PROTECTION]),
                                   critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                        ca_key.public_key()), critical=False)
                    .sign(ca_key, hashes.SHA256()))
            create_private_file_once(signer_path, cert.public_bytes(serialization.Encoding.PEM))
        signer_pem = _read(signer_path)
        signer_cert = x509.load_pem_x509_certificate(signer_pem)
        if signer_cert.public_key() != signer_key.public_key() or \
                signer_cert.issuer != ca_cert.subject:
            raise ContentCaError(f"{signer_path} is not the certificate of {SIGNER_KEY_FILE} "
                                 f"issued by {CA_CERT_FILE}")
        return cls(_read(ca_path), signer_pem, _read(data_dir / SIGNER_KEY_FILE), ca_path)


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey,
             now: datetime.datetime, years: int) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + years * 365 * _DAY)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))


def _read(path: Path) -> bytes:
    """A CA file, refused when others may read or replace it (a symbolic link included)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ContentCaError(f"{path} cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & 0o077:
            raise ContentCaError(f"{path} has mode {mode:04o}: other users could read or "
                                 f"replace it. Fix with: chmod 600 {path}")
        return file.read()


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The P-256 key at ``path``, made (0600) when there is none."""
    if not os.path.lexists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        create_private_file_once(path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    try:
        loaded = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as exc:
        raise ContentCaError(f"{path} is unreadable ({exc})") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or \
            not isinstance(loaded.curve, ec.SECP256R1):
        raise ContentCaError(f"{path} does not hold a P-256 key")
    return loaded
