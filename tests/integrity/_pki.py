"""Keys, certificates and small models for the integrity tests, made with `cryptography`."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


def write_ec_key(
    folder: Path, name: str = "key", curve: ec.EllipticCurve | None = None
) -> tuple[Path, Path]:
    """Write `name.pem` (private) and `name.pub.pem` (public); return both paths."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "Test Root CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    cn: str = "model-publisher",
    email: str = "publisher@example.org",
    eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CODE_SIGNING,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), False)
    return key, builder.sign(ca_key, hashes.SHA384())


def write_pki(folder: Path, **leaf_options: object) -> dict[str, Path]:
    """Write a root CA, a signing leaf and its key; return their paths."""
    ca_key, ca_cert = make_ca()
    leaf_key, leaf_cert = make_leaf(ca_key, ca_cert, **leaf_options)  # type: ignore[arg-type]
    paths = {
        "ca": folder / "ca.pem",
        "leaf": folder / "leaf.pem",
        "key": folder / "leaf-key.pem",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["leaf"].write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def make_model(folder: Path) -> Path:
    """Write a small Hugging Face-style model folder and return it."""
    model = folder / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}\n')
    (model / "model.safetensors").write_bytes(os.urandom(300_000))
    (model / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (model / "sub" / "extra.bin").write_bytes(b"\x00" * 4096)
    return model
