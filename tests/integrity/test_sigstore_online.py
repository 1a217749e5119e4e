"""Sigstore keyless signing needs the network and an OIDC identity: online only.

Run with MODELGUARD_ONLINE=1 and SIGSTORE_ID_TOKEN set (for example in GitHub Actions with
`id-token: write`, or a token from `sigstore`'s own flow); SIGSTORE_IDENTITY and
SIGSTORE_ISSUER name the identity the token carries.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import modelguard
from integrity._pki import make_model

pytestmark = pytest.mark.online


def test_keyless_sign_then_offline_verify(tmp_path: Path) -> None:
    token = os.environ.get("SIGSTORE_ID_TOKEN")
    identity = os.environ.get("SIGSTORE_IDENTITY")
    issuer = os.environ.get("SIGSTORE_ISSUER")
    if not (token and identity and issuer):
        pytest.skip("SIGSTORE_ID_TOKEN, SIGSTORE_IDENTITY and SIGSTORE_ISSUER are needed")
    model = make_model(tmp_path)
    modelguard.sign(model, sigstore=True, identity_token=token)
    verified = modelguard.verify(model, identity=identity, issuer=issuer)
    assert verified.signer.method == "sigstore"
    (model / "config.json").write_text("{}")
    with pytest.raises(modelguard.IntegrityError):
        modelguard.verify(model, identity=identity, issuer=issuer)
