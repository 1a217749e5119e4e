"""The sigstore-python calls for Sigstore keyless bundles, imported only when used.

sigstore-python (and pydantic under it) is slow to import, so nothing here imports it at
module level; `import modelguard.signing.envelope` stays light for key and certificate modes.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from modelguard.errors import BundleError, ConfigError, SignatureError, SignerError

__all__ = ["SigstoreResult", "default_trusted_root", "sign_sigstore", "verify_sigstore"]

# Where sigstore-python keeps the trust material of the public-good instance it ships with
# (sigstore/_store/<percent-encoded TUF URL>/trusted_root.json).
_PROD_STORE = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


def default_trusted_root() -> str:
    """Return the path of the production `trusted_root.json` embedded in sigstore-python.

    Raises:
        ConfigError: sigstore-python is not installed or does not ship the file.
    """
    spec = importlib.util.find_spec("sigstore")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = os.path.join(location, "_store", _PROD_STORE, "trusted_root.json")
        if os.path.isfile(path):
            return path
    raise ConfigError(
        "sigstore-python's embedded trusted_root.json was not found; pass a trusted root file"
    )


@dataclass(frozen=True, slots=True)
class SigstoreResult:
    """What a successful Sigstore verification established.

    Attributes:
        payload_type: the DSSE payload type (not yet checked).
        payload: the DSSE payload bytes.
        certificate: the Fulcio signing certificate.
    """

    payload_type: str
    payload: bytes
    certificate: x509.Certificate


class _RecordingIdentity:
    """A sigstore policy that checks identity and issuer but records a mismatch.

    sigstore-python checks the policy before the signature; recording (not raising) lets a
    forged bundle fail as a bad signature and a genuine one by someone else as an untrusted
    signer.
    """

    def __init__(self, identity: str, issuer: str) -> None:
        from sigstore.verify.policy import Identity

        self._inner = Identity(identity=identity, issuer=issuer)
        self.mismatch: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            self._inner.verify(cert)
        except (VerificationError, x509.ExtensionNotFound) as exc:
            self.mismatch = str(exc) or type(exc).__name__


def verify_sigstore(
    raw: bytes,
    *,
    identity: str,
    issuer: str,
    trusted_root: str | os.PathLike[str] | None = None,
) -> SigstoreResult:
    """Verify a Sigstore keyless bundle offline against a trusted root and an identity.

    Args:
        raw: the bundle JSON with exactly one DSSE signature.
        identity: the expected certificate SAN (e-mail or URI), exact match.
        issuer: the expected OIDC issuer, exact match.
        trusted_root: a `trusted_root.json`; default: sigstore-python's embedded prod root.

    Returns:
        The payload and the signing certificate.

    Raises:
        BundleError: sigstore-python cannot parse the bundle.
        SignatureError: the chain, log entry, timestamps or signature do not verify.
        SignerError: everything verifies but the identity or issuer differ.
        ConfigError: the trusted root cannot be loaded.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    root_path = os.fspath(trusted_root) if trusted_root is not None else default_trusted_root()
    try:
        root = TrustedRoot.from_file(root_path)
    except Exception as exc:  # pydantic/protobuf/OS errors: all mean an unusable root file
        raise ConfigError(f"cannot load the Sigstore trusted root {root_path!r}: {exc}") from exc
    try:
        bundle = SigstoreBundle.from_json(raw)
    except Exception as exc:  # InvalidBundle, pydantic ValidationError, ValueError
        raise BundleError(f"invalid Sigstore bundle: {exc}") from exc
    policy = _RecordingIdentity(identity, issuer)
    try:
        payload_type, payload = Verifier(trusted_root=root).verify_dsse(bundle, policy)
    except SigstoreError as exc:
        raise SignatureError(f"the Sigstore bundle does not verify: {exc}") from exc
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise SignatureError(f"the Sigstore bundle does not verify: {exc}") from exc
    if policy.mismatch is not None:
        raise SignerError(
            f"the Sigstore signer is not {identity!r} from {issuer!r}: {policy.mismatch}"
        )
    return SigstoreResult(payload_type, payload, bundle.signing_certificate)


def sign_sigstore(payload: bytes, token: str, *, staging: bool = False) -> bytes:
    """Sign an in-toto statement keyless with Sigstore (network: Fulcio and Rekor).

    Args:
        payload: the statement bytes.
        token: an OIDC identity token.
        staging: use the Sigstore staging instance instead of production.

    Returns:
        The bundle JSON bytes.

    Raises:
        ConfigError: the token is invalid or signing fails.
    """
    from sigstore.dsse import Statement
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    try:
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
        context = SigningContext.from_trust_config(config)
        with context.signer(IdentityToken(token), cache=True) as signer:
            result: Any = signer.sign_dsse(Statement(payload))
    except SigstoreError as exc:
        raise ConfigError(f"Sigstore signing failed: {exc}") from exc
    text: str = result.to_json()
    return text.encode("utf-8")
