"""Key and certificate factories for the signing tests (Helper S)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"

_HASH_FOR_CURVE = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh EC private key (P-256 unless told)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    subject_cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_usage: str | None = "default",
    eku: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
    san_email: str | None = None,
    basic_constraints: bool = True,
) -> x509.Certificate:
    """Build a certificate; self-signed when `issuer` is None."""
    issuer_name = issuer[0].subject if issuer else _name(subject_cn)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject_cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - 60 * DAY)
        .not_valid_after(not_after or NOW + 30 * DAY)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if key_usage is not None:
        sign = (key_usage == "default" and not ca) or key_usage == "digital_signature"
        cert_sign = (key_usage == "default" and ca) or key_usage == "cert_sign"
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=sign,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=cert_sign,
                crl_sign=cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if eku is not None and not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san_email is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(san_email)]), critical=False
        )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    curve = signing_key.curve.name
    return builder.sign(signing_key, _HASH_FOR_CURVE[curve]())


@dataclass
class Pki:
    """A root, an intermediate and a code-signing leaf."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    def chain(self) -> list[x509.Certificate]:
        return [self.leaf, self.intermediate]

    def with_leaf(self, **kwargs: Any) -> Pki:
        """The same CAs with a new leaf made with `make_cert` options."""
        key = ec_key()
        leaf = make_cert(
            kwargs.pop("cn", "signer"), key, (self.intermediate, self.intermediate_key), **kwargs
        )
        return Pki(self.root, self.root_key, self.intermediate, self.intermediate_key, leaf, key)


def make_pki(leaf_curve: ec.EllipticCurve | None = None) -> Pki:
    """A fresh root -> intermediate -> leaf (SAN signer@example.com) hierarchy."""
    root_key, int_key, leaf_key = ec_key(ec.SECP384R1()), ec_key(), ec_key(leaf_curve)
    root = make_cert("test-root", root_key, ca=True)
    intermediate = make_cert("test-intermediate", int_key, (root, root_key), ca=True)
    leaf = make_cert("signer", leaf_key, (intermediate, int_key), san_email="signer@example.com")
    return Pki(root, root_key, intermediate, int_key, leaf, leaf_key)


def pem(cert_or_key: Any) -> bytes:
    """PEM bytes of a certificate, public key or private key."""
    if isinstance(cert_or_key, x509.Certificate):
        return cert_or_key.public_bytes(serialization.Encoding.PEM)
    if isinstance(cert_or_key, ec.EllipticCurvePublicKey) or hasattr(cert_or_key, "verify"):
        return cert_or_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return cert_or_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def statement_for(folder: Path) -> dict[str, Any]:
    """An OMS v1.0 statement for the regular files of a folder (sha256, files), by hand."""
    resources = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        resources.append(
            {
                "name": name,
                "algorithm": "sha256",
                "digest": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
        )
    resources.sort(key=lambda r: r["name"])
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": folder.name, "digest": {"sha256": root}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "resources": resources,
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": [],
            },
        },
    }


def tiny_model(tmp_path: Path) -> Path:
    """A small model folder with a nested file."""
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (model / "sub" / "extra.txt").write_text("extra")
    return model
