"""Red-team tests for `modelguard verify` (Helper R).

Each test is an attack by someone who controls the model folder and the signature file (not
the trusted keys or CA). Every test asserts the SAFE behaviour, so a test that fails marks a
gap: the verifier accepted what it must refuse, crashed, hung, or gave the wrong rule or exit
code. Statements "signed by a careless signer" are made with a test key that the verifier
trusts, to show that the manifest checks hold even when the signature is valid.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import pickle
import socket
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import modelguard
from integrity._helpers_s import DAY, NOW, ec_key, make_cert, make_pki, pem
from integrity._pki import make_model
from integrity.shared_dir import OMS_DIR, needs_oms
from modelguard.cli import main
from modelguard.errors import FileChangedError, VerificationError
from modelguard.signing.envelope import sign_statement
from modelguard.signing.pq import generate_pq_key, pq_keyid
from modelguard.verification import VerificationOutcome, verify_report

KEY = ec.generate_private_key(ec.SECP256R1())
PUB = pem(KEY.public_key())
ATTACKER = ec.generate_private_key(ec.SECP256R1())


# -- helpers ----------------------------------------------------------------------------------


def rules(outcome: VerificationOutcome) -> set[str]:
    return {f.rule_id for f in outcome.report.findings}


def refused(outcome: VerificationOutcome, *expected: str) -> None:
    """The verification failed, with one of the `expected` rule ids among its findings."""
    assert outcome.verified is None, f"accepted; findings {sorted(rules(outcome))}"
    if expected:
        got = rules(outcome) | {i.rule_id for r in outcome.report.files for i in r.incomplete}
        assert got & set(expected), f"expected one of {expected}, got {sorted(got)}"


def check(model: Path, sig: Path, **options: Any) -> VerificationOutcome:
    options.setdefault("public_key", PUB)
    return verify_report(model, sig, **options)


def signed_model(tmp_path: Path, **sign_options: Any) -> tuple[Path, Path]:
    """A model and its signature (outside the model), signed with the trusted KEY."""
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=KEY, output=sig, **sign_options)
    return model, sig


def edit_bundle(sig: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(sig.read_bytes())
    change(doc)
    sig.write_text(json.dumps(doc))


def statement_of(sig: Path) -> dict[str, Any]:
    doc = json.loads(sig.read_bytes())
    return json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))


def bare(statement: dict[str, Any]) -> dict[str, Any]:
    """Drop modelguard's bindings (so a crafted resource list is not caught by them) and
    recompute the OMS root digest in listed order (so it is not caught by that either)."""
    subject = statement["subject"][0]
    subject.pop("annotations", None)
    digests = [bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"]]
    subject["digest"]["sha256"] = hashlib.sha256(b"".join(digests)).hexdigest()
    return statement


def write_signed(sig: Path, statement: dict[str, Any], key: Any = KEY, **kw: Any) -> Path:
    sig.write_bytes(sign_statement(statement, private_key=key, **kw))
    return sig


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def res(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "algorithm": "sha256", "digest": sha(data)}


# -- bundle -----------------------------------------------------------------------------------


def test_payload_edited_is_refused(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    st = statement_of(sig)
    st["predicate"]["resources"][0]["digest"] = "0" * 64

    def swap(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()

    edit_bundle(sig, swap)
    refused(check(model, sig), "MG301")


def test_garbage_signature_first_valid_second_is_refused(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)

    def reorder(doc: dict[str, Any]) -> None:
        sigs = doc["dsseEnvelope"]["signatures"]
        sigs.insert(0, {"sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()})

    edit_bundle(sig, reorder)
    refused(check(model, sig), "MG301")


def test_valid_first_garbage_second_is_reported_and_refused(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)

    def append(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": "other"})

    edit_bundle(sig, append)
    outcome = check(model, sig)
    refused(outcome, "MG307")
    with pytest.raises(VerificationError):
        modelguard.verify(model, sig, public_key=PUB)


def test_garbage_second_signature_labelled_mldsa_is_not_silently_ignored(tmp_path: Path) -> None:
    """A garbage second signature whose keyid merely starts with "mldsa65:" must still be
    reported (MG307 or MG308) when no ML-DSA key is given: "more than one signature in an
    envelope is reported, not ignored" (issue 6 section 3)."""
    model, sig = signed_model(tmp_path)

    def append(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": "mldsa65:" + "ab" * 32})

    edit_bundle(sig, append)
    outcome = check(model, sig)
    assert rules(outcome) & {"MG307", "MG308"}, "the extra signature left no trace in the report"


def test_spoofed_pq_keyid_with_garbage_signature_fails_require_pq(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    pq = generate_pq_key()

    def append(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": pq_keyid(pq)})

    edit_bundle(sig, append)
    refused(check(model, sig, pq_public_key=[pq.public_key()], require_pq=True), "MG308")


def test_hint_changed_is_refused(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)

    def change(doc: dict[str, Any]) -> None:
        doc["verificationMaterial"]["publicKey"]["hint"] = "0" * 64

    edit_bundle(sig, change)
    refused(check(model, sig), "MG302")


def test_hint_removed_needs_the_trusted_key_anyway(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    edit_bundle(sig, lambda doc: doc["verificationMaterial"].__setitem__("publicKey", {}))
    assert check(model, sig).verified is not None  # pre-1.1 form: fine, the signature verifies
    (model / "config.json").write_text("{}")
    # the attacker re-signs the tampered model with his own key, names it in rawBytes
    st = modelguard.build_manifest(model).to_statement()
    write_signed(sig, st, key=ATTACKER)

    def raw(doc: dict[str, Any]) -> None:
        doc["verificationMaterial"]["publicKey"] = {
            "rawBytes": base64.b64encode(pem(ATTACKER.public_key())).decode()
        }

    edit_bundle(sig, raw)
    refused(check(model, sig), "MG301", "MG302")


@pytest.mark.parametrize(
    "where",
    ["top", "verificationMaterial", "publicKey", "dsseEnvelope", "signature"],
)
def test_unknown_fields_are_refused(tmp_path: Path, where: str) -> None:
    model, sig = signed_model(tmp_path)
    targets = {
        "top": lambda d: d,
        "verificationMaterial": lambda d: d["verificationMaterial"],
        "publicKey": lambda d: d["verificationMaterial"]["publicKey"],
        "dsseEnvelope": lambda d: d["dsseEnvelope"],
        "signature": lambda d: d["dsseEnvelope"]["signatures"][0],
    }
    edit_bundle(sig, lambda doc: targets[where](doc).__setitem__("smuggled", "x"))
    refused(check(model, sig), "MG303")


def test_key_bundle_with_garbage_tlog_entries_is_refused(tmp_path: Path) -> None:
    """A key-mode bundle carries `tlogEntries: []`; arbitrary objects there are unverified,
    unauthenticated content that model-signing's schema would not accept either."""
    model, sig = signed_model(tmp_path)

    def junk(doc: dict[str, Any]) -> None:
        doc["verificationMaterial"]["tlogEntries"] = [{"anything": "goes", "payload": "x" * 50}]

    edit_bundle(sig, junk)
    refused(check(model, sig), "MG303")


def test_duplicate_payload_keys_resolve_like_model_signing(tmp_path: Path) -> None:
    """Python's json (and model-signing 1.1.1, checked by hand) keep the LAST duplicate key:
    a first, tampered payload is dead text, a last tampered one must be refused."""
    model, sig = signed_model(tmp_path)
    text = sig.read_text()
    good = json.loads(text)["dsseEnvelope"]["payload"]
    st = statement_of(sig)
    st["predicate"]["resources"][0]["digest"] = "0" * 64
    bad = base64.b64encode(json.dumps(st).encode()).decode()
    last_bad = tmp_path / "last-bad.sig"
    last_bad.write_text(
        text.replace(f'"payload": "{good}"', f'"payload": "{good}", "payload": "{bad}"')
    )
    refused(check(model, last_bad), "MG301", "MG303")
    first_bad = tmp_path / "first-bad.sig"
    first_bad.write_text(
        text.replace(f'"payload": "{good}"', f'"payload": "{bad}", "payload": "{good}"')
    )
    outcome = check(model, first_bad)
    if outcome.verified is not None:  # the signed (last) payload was used
        assert outcome.verified.manifest.resources[0].digest != "0" * 64
    else:
        refused(outcome, "MG303")


@pytest.mark.parametrize(
    "payload_type",
    ["application/vnd.in-toto+JSON", "application/json", "application/vnd.in-toto+json "],
)
def test_payload_type_changed_is_refused(tmp_path: Path, payload_type: str) -> None:
    model, sig = signed_model(tmp_path)
    edit_bundle(sig, lambda doc: doc["dsseEnvelope"].__setitem__("payloadType", payload_type))
    refused(check(model, sig), "MG303", "MG301")


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle.v0.3+json ",
        "APPLICATION/VND.DEV.SIGSTORE.BUNDLE.V0.3+JSON",
        None,
    ],
)
def test_media_type_variants_are_refused(tmp_path: Path, media_type: str | None) -> None:
    model, sig = signed_model(tmp_path)
    edit_bundle(sig, lambda doc: doc.__setitem__("mediaType", media_type))
    refused(check(model, sig), "MG303")


def test_huge_signature_file_is_refused_unread(tmp_path: Path) -> None:
    model, _ = signed_model(tmp_path)
    sig = tmp_path / "huge.sig"
    with open(sig, "wb") as handle:
        handle.truncate(64 * 1024 * 1024 + 10)  # sparse
    refused(check(model, sig), "MG303")


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe\x00garbage",
        b"",
        b"null",
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b"1" * 10_000,
    ],
    ids=["deep-array", "deep-object", "non-utf8", "empty", "null", "no-material", "bigint"],
)
def test_malformed_bundles_are_mg303(tmp_path: Path, data: bytes) -> None:
    model, _ = signed_model(tmp_path)
    sig = tmp_path / "bad.sig"
    sig.write_bytes(data)
    refused(check(model, sig), "MG303")


def test_utf16_bundle_is_refused(tmp_path: Path) -> None:
    """The OMS signature file is UTF-8 JSON; Python's json.loads(bytes) silently accepts
    UTF-16/32 too, which model-signing (text mode, UTF-8) would not read."""
    model, sig = signed_model(tmp_path)
    sig.write_bytes(sig.read_text().encode("utf-16"))
    refused(check(model, sig), "MG303")


@pytest.mark.parametrize("trick", ["newline", "urlsafe", "nopad", "space"])
def test_base64_tricks_never_change_what_is_verified(tmp_path: Path, trick: str) -> None:
    model, sig = signed_model(tmp_path)
    original = statement_of(sig)
    doc = json.loads(sig.read_bytes())
    payload = doc["dsseEnvelope"]["payload"]
    if trick == "newline":
        payload = payload[:40] + "\n" + payload[40:]
    elif trick == "urlsafe":
        payload = payload.replace("+", "-").replace("/", "_")
    elif trick == "nopad":
        payload = payload.rstrip("=")
    else:
        payload = " " + payload
    doc["dsseEnvelope"]["payload"] = payload
    sig.write_text(json.dumps(doc))
    outcome = check(model, sig)  # must not crash
    if outcome.verified is None:
        refused(outcome, "MG303")
    else:
        assert outcome.verified.manifest.to_statement()["predicate"] == original["predicate"]


def test_certificate_bundle_with_public_key_of_the_leaf_is_refused(tmp_path: Path) -> None:
    pki = make_pki()
    model = make_model(tmp_path)
    sig = tmp_path / "model.sig"
    modelguard.sign(
        model,
        private_key=pki.leaf_key,
        certificate=pki.leaf,
        chain=[pki.intermediate],
        output=sig,
    )
    refused(verify_report(model, sig, public_key=pem(pki.leaf.public_key())), "MG302")
    refused(verify_report(model, sig, public_key=pem(pki.leaf)), "MG302")  # the cert PEM itself


def test_key_bundle_with_a_root_ca_is_refused(tmp_path: Path) -> None:
    pki = make_pki()
    model, sig = signed_model(tmp_path)
    refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


@needs_oms
def test_sigstore_bundle_with_key_trust_and_key_bundle_with_identity_are_refused(
    tmp_path: Path,
) -> None:
    vectors = OMS_DIR / "vectors"
    pub = OMS_DIR / "keys" / "certificate" / "signing-key-pub.pem"
    model = vectors / "v1.1.0-sigstore"
    out = verify_report(model, model / "model.sig", public_key=pub, ignore=["ignore-me"])
    refused(out, "MG302")
    key_model = vectors / "v1.1.0-elliptic-key"
    out = verify_report(
        key_model,
        key_model / "model.sig",
        identity="stefanb@us.ibm.com",
        issuer="https://sigstore.verify.ibm.com/oauth2",
        trusted_root=OMS_DIR / "prod_trusted_root.json",
        ignore=["ignore-me"],
    )
    refused(out, "MG302")
    cert_model = vectors / "v1.1.0-certificate"
    out = verify_report(cert_model, cert_model / "model.sig", public_key=pub, ignore=["ignore-me"])
    refused(out, "MG302")


def test_signature_fifo_does_not_hang(tmp_path: Path) -> None:
    """The attacker owns `model/model.sig`, the default signature path: a FIFO there must be
    refused, not block `verify` forever."""
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=KEY)
    (model / "model.sig").unlink()
    os.mkfifo(model / "model.sig")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["outcome"] = verify_report(model, public_key=PUB)
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(3)
    hung = thread.is_alive()
    if hung:  # release the reader so the test process does not keep a blocked thread
        os.close(os.open(model / "model.sig", os.O_WRONLY))
        thread.join(5)
    assert not hung, "verify blocked on a FIFO signature file"
    if "outcome" in box:
        refused(box["outcome"])


def test_signature_link_to_dev_zero_is_refused_quickly(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    modelguard.sign(model, private_key=KEY)
    (model / "model.sig").unlink()
    (model / "model.sig").symlink_to("/dev/zero")
    refused(verify_report(model, public_key=PUB), "MG303")


# -- statements signed by a (careless) trusted signer ----------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/etc/passwd",
        "a\\b",
        "a/./b",
        "./a",
        "a//b",
        "a/",
        "",
        "a\x00b",
        "sub/../config.json",
        "C:/x",
        "a\nb",
    ],
)
def test_unsafe_signed_names_are_mg306(tmp_path: Path, name: str) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    st["predicate"]["resources"].append(res(name, b"x"))
    sig = write_signed(tmp_path / "s.sig", bare(st))
    refused(check(model, sig), "MG306")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("caf\u00e9.bin", "cafe\u0301.bin"),
        ("Model.bin", "model.bin"),
        ("SUB/a.bin", "sub/b.bin"),
        ("stra\u00dfe.bin", "STRASSE.bin"),
    ],
    ids=["nfc-nfd", "case", "folder-case", "casefold"],
)
def test_ambiguous_signed_name_twins_are_mg306(tmp_path: Path, first: str, second: str) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    st = modelguard.build_manifest(model).to_statement()
    st["predicate"]["resources"] += [res(first, b"a"), res(second, b"b")]
    sig = write_signed(tmp_path / "s.sig", bare(st))
    refused(check(model, sig), "MG306")


def test_duplicate_signed_names_with_different_digests_are_mg305(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    st["predicate"]["resources"].append(res("config.json", b"evil"))
    sig = write_signed(tmp_path / "s.sig", bare(st))
    refused(check(model, sig), "MG305")


def _shard_statement(model: Path, ranges: list[tuple[int, int]]) -> dict[str, Any]:
    """A shard statement for model.safetensors with honest digests of the given ranges."""
    st = modelguard.build_manifest(model, shard_size=100_000).to_statement()
    data = (model / "model.safetensors").read_bytes()
    kept = [r for r in st["predicate"]["resources"] if not r["name"].startswith("model.safe")]
    for start, end in ranges:
        kept.append(res(f"model.safetensors:{start}:{end}", data[start:end]))
    st["predicate"]["resources"] = kept
    return bare(st)


@pytest.mark.parametrize(
    "ranges",
    [
        [(0, 100_000), (50_000, 150_000), (150_000, 250_000), (200_000, 300_000)],
        [(0, 100_000), (200_000, 300_000)],
        [(0, 100_000), (100_000, 200_000)],
        [(0, 100_000), (100_000, 200_000), (200_000, 300_000), (300_000, 300_010)],
        [(100_000, 200_000), (200_000, 300_000)],
        [(0, 100_000), (100_000, 200_000), (200_000, 300_000), (0, 100_000)],
    ],
    ids=["overlap", "gap", "short", "beyond-eof", "no-start", "repeat"],
)
def test_bad_shard_layouts_are_refused(tmp_path: Path, ranges: list[tuple[int, int]]) -> None:
    model = make_model(tmp_path)
    sig = write_signed(tmp_path / "s.sig", _shard_statement(model, ranges))
    refused(check(model, sig), "MG305", "MG311")


def test_appending_to_a_shard_signed_file_is_refused(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path, shard_size=100_000)
    with open(model / "model.safetensors", "ab") as handle:
        handle.write(b"tail")
    refused(check(model, sig), "MG311")


def test_empty_file_in_shard_mode_cannot_be_filled(tmp_path: Path) -> None:
    """Shard mode gives an empty file no shard; its size 0 is signed in modelguard.sizes. The
    verifier must still refuse the file once it has content (here: code a loader imports)."""
    model = make_model(tmp_path)
    (model / "__init__.py").write_bytes(b"")
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=KEY, output=sig, shard_size=100_000)
    assert check(model, sig).verified is not None
    (model / "__init__.py").write_text("import os\nos.system('id')\n")
    refused(check(model, sig), "MG311")


def test_dot_resource_for_a_folder_model_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    data = (model / "config.json").read_bytes()
    st = modelguard.build_manifest(model).to_statement()
    st["predicate"]["resources"] = [res(".", data)]
    sig = write_signed(tmp_path / "s.sig", bare(st))
    refused(check(model, sig), "MG306", "MG312", "MG313")


def test_root_digest_mismatch_is_mg305(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    st["subject"][0]["digest"]["sha256"] = "1" * 64
    sig = write_signed(tmp_path / "s.sig", st)
    refused(check(model, sig), "MG305")


@pytest.mark.parametrize("size", [4096.0, "4096", -1, True, None])
def test_non_integer_sizes_are_mg305(tmp_path: Path, size: Any) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    notes = st["subject"][0]["annotations"]
    sizes = json.loads(notes["modelguard.sizes"])
    sizes["sub/extra.bin"] = size
    notes["modelguard.sizes"] = json.dumps(sizes)
    notes.pop("modelguard.binding")
    sig = write_signed(tmp_path / "s.sig", st)
    refused(check(model, sig), "MG305")


def test_binding_annotation_mismatch_is_mg305(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    st["subject"][0]["annotations"]["modelguard.binding"] = "2" * 64
    sig = write_signed(tmp_path / "s.sig", st)
    refused(check(model, sig), "MG305")


def test_renamed_files_with_same_root_digest_are_refused(tmp_path: Path) -> None:
    """The OMS root digest covers digests only: a statement whose names were changed but
    whose sort order is kept has the same root. The files must still be found by name."""
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    for r in st["predicate"]["resources"]:
        r["name"] = "z_" + r["name"].replace("/", "_")
    sig = write_signed(tmp_path / "s.sig", bare(st))
    refused(check(model, sig), "MG312", "MG313")


@pytest.mark.parametrize("pattern", ["../x", "/abs", "a/../../b"])
def test_escaping_signed_ignore_paths_are_mg305(tmp_path: Path, pattern: str) -> None:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    st["predicate"]["serialization"]["ignore_paths"] = [pattern]
    sig = write_signed(tmp_path / "s.sig", st)
    refused(check(model, sig), "MG305")


def test_legacy_predicate_is_refused_without_the_switch(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    subjects = [
        {
            "name": p.relative_to(model).as_posix(),
            "digest": {"sha256": sha(p.read_bytes())},
            "annotations": {"actual_hash_algorithm": "file-sha256"},
        }
        for p in sorted(model.rglob("*"))
        if p.is_file()
    ]
    st = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://model_signing/Digests/v0.1",
        "predicate": {},
    }
    sig = write_signed(tmp_path / "s.sig", st)
    refused(check(model, sig), "MG304")
    with pytest.raises(modelguard.LegacyFormatError):
        modelguard.verify(model, sig, public_key=PUB)


# -- files on disk ----------------------------------------------------------------------------


def test_file_replaced_by_link_to_same_content_is_mg314(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    copy = model / "sub" / "copy.json"
    copy.write_bytes((model / "config.json").read_bytes())
    (model / "config.json").unlink()
    (model / "config.json").symlink_to("sub/copy.json")
    refused(check(model, sig), "MG314")


def test_allow_links_is_the_verifiers_policy_not_the_signers(tmp_path: Path) -> None:
    """Decision: links are governed by the verification policy, not by the signed
    allow_symlinks. A Hugging Face cache snapshot of a model signed from a plain folder is
    made of links into blobs/, and must verify with --allow-links. The content behind an
    allowed link is still verified byte for byte, and without --allow-links the link fails."""
    model, sig = signed_model(tmp_path)
    st = statement_of(sig)
    assert st["predicate"]["serialization"]["allow_symlinks"] is False
    (model / "hidden").mkdir()
    (model / "hidden" / "c.json").write_bytes((model / "config.json").read_bytes())
    (model / "config.json").unlink()
    (model / "config.json").symlink_to("hidden/c.json")
    refused(check(model, sig, ignore=["hidden"]), "MG314")
    assert check(model, sig, allow_links=True, ignore=["hidden"]).verified is not None
    (model / "hidden" / "c.json").write_text('{"evil": true}')
    refused(check(model, sig, allow_links=True, ignore=["hidden"]), "MG311")


@pytest.mark.parametrize("kind", ["dev-zero", "loop", "dangling", "outside", "dir-link"])
def test_bad_links_are_mg314_even_when_links_are_allowed(tmp_path: Path, kind: str) -> None:
    model, sig = signed_model(tmp_path, allow_links=True)
    target = model / "model.safetensors"
    outside = tmp_path / "outside.bin"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    if kind == "dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "loop":
        target.symlink_to("model.safetensors")
    elif kind == "dangling":
        target.symlink_to("nowhere")
    elif kind == "outside":
        target.symlink_to(outside)
    else:
        (tmp_path / "d").mkdir()
        target.symlink_to(tmp_path / "d")
    refused(check(model, sig, allow_links=True), "MG314")


@pytest.mark.parametrize("allow", [False, True])
def test_symlinked_folder_is_never_skipped(tmp_path: Path, allow: bool) -> None:
    model, sig = signed_model(tmp_path)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "modeling_evil.py").write_text("import os\n")
    (model / "extras").symlink_to(evil, target_is_directory=True)
    refused(check(model, sig, allow_links=allow), "MG314")


def test_link_repointed_to_same_content_is_caught_by_open(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    (model / "blob1").write_bytes(b"same bytes")
    (model / "w.bin").symlink_to("blob1")
    sig = tmp_path / "model.sig"
    modelguard.sign(model, private_key=KEY, output=sig, allow_links=True)
    verified = modelguard.verify(model, sig, public_key=PUB, allow_links=True)
    (model / "w.bin").unlink()
    (model / "w.bin").symlink_to("blob1")  # same target: still fine
    with verified.open("w.bin") as handle:
        assert handle.read() == b"same bytes"
    (model / "blob2").write_bytes(b"same bytes")
    (model / "w.bin").unlink()
    (model / "w.bin").symlink_to("blob2")
    with pytest.raises(FileChangedError):
        verified.open("w.bin")


def test_hard_link_to_outside_file_is_guarded_by_identity(tmp_path: Path) -> None:
    """Hard links are not a verification failure (OMS covers no metadata), but a write
    through the outside name after verification must be caught by open()."""
    model, sig = signed_model(tmp_path)
    outside = tmp_path / "outside.bin"
    os.link(model / "model.safetensors", outside)
    verified = modelguard.verify(model, sig, public_key=PUB)
    with open(outside, "r+b") as handle:
        handle.write(b"X")
    with pytest.raises(FileChangedError):
        verified.open("model.safetensors")


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory"])
def test_special_file_where_a_signed_file_should_be(tmp_path: Path, kind: str) -> None:
    model, sig = signed_model(tmp_path)
    target = model / "model.safetensors"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
        expected = ("MG315",)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
        expected = ("MG315",)
    else:
        target.mkdir()
        (target / "x").write_bytes(b"x")
        expected = ("MG312",)
    refused(check(model, sig), *expected)


def _big_model(tmp_path: Path) -> Path:
    model = tmp_path / "big"
    model.mkdir()
    (model / "w.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    return model


def test_file_changed_while_hashing_is_refused(tmp_path: Path) -> None:
    model = _big_model(tmp_path)
    sig = tmp_path / "s.sig"
    modelguard.sign(model, private_key=KEY, output=sig)
    done = []

    def tamper(_: int, __: int) -> None:
        if not done:
            done.append(1)
            with open(model / "w.bin", "r+b") as handle:
                handle.seek(2 * 1024 * 1024 + 5)
                handle.write(b"EVIL")

    outcome = check(model, sig, workers=1, progress=tamper)
    refused(outcome, "MG311", "MG001", "MG317")


def test_hashed_region_rewritten_during_hashing_with_mtime_restored(tmp_path: Path) -> None:
    """After the first MiB is hashed, the attacker rewrites it in place and sets the mtime
    back. The bytes hashed are the signed ones, but the file on disk is not when verify
    returns: the ctime (which cannot be set back) changed during hashing."""
    model = _big_model(tmp_path)
    sig = tmp_path / "s.sig"
    modelguard.sign(model, private_key=KEY, output=sig)
    path = model / "w.bin"
    done = []

    def tamper(_: int, __: int) -> None:
        if not done:
            done.append(1)
            st = os.stat(path)
            with open(path, "r+b") as handle:
                handle.write(b"EVIL")
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    outcome = check(model, sig, workers=1, progress=tamper)
    assert done
    if outcome.verified is not None:  # at least the handle must refuse the changed file
        with pytest.raises(FileChangedError):
            outcome.verified.open("w.bin")
    refused(outcome, "MG001", "MG311", "MG317")


def test_nfd_name_on_disk_does_not_match_nfc_signed_name(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    nfc = unicodedata.normalize("NFC", "caf\u00e9.bin")
    (model / nfc).write_bytes(b"w")
    sig = tmp_path / "s.sig"
    modelguard.sign(model, private_key=KEY, output=sig)
    (model / nfc).rename(model / unicodedata.normalize("NFD", nfc))
    refused(check(model, sig), "MG312", "MG313")


def test_both_nfc_and_nfd_twins_on_disk_are_mg306(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    nfc = unicodedata.normalize("NFC", "caf\u00e9.bin")
    (model / nfc).write_bytes(b"w")
    sig = tmp_path / "s.sig"
    modelguard.sign(model, private_key=KEY, output=sig)
    (model / unicodedata.normalize("NFD", nfc)).write_bytes(b"evil")
    refused(check(model, sig), "MG306", "MG313")


def test_hf_cache_folder_smuggling_is_reported(tmp_path: Path) -> None:
    """`.cache/huggingface` is tolerated by default; what is inside is not descended. It must
    at least be reported (MG318) and nothing else at the top may ride on it."""
    model, sig = signed_model(tmp_path)
    cache = model / ".cache" / "huggingface"
    cache.mkdir(parents=True)
    (cache / "modeling_evil.py").write_text("import os\n")
    outcome = check(model, sig)
    assert outcome.verified is not None
    ignored = [f for f in outcome.report.findings if f.rule_id == "MG318"]
    assert any(".cache/huggingface" in f.location.path for f in ignored)
    (model / ".cache" / "modeling_evil.py").write_text("import os\n")  # beside, not inside
    refused(check(model, sig), "MG313")


@pytest.mark.parametrize(
    "name", ["sub/.git/hooks/post-checkout", "sub/model.sig", "sub/.gitattributes", ".gits/x"]
)
def test_ignored_names_only_match_at_the_top(tmp_path: Path, name: str) -> None:
    model, sig = signed_model(tmp_path)
    path = model / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    refused(check(model, sig), "MG313")


def test_signature_inside_a_subfolder_is_ignored_only_as_itself(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    sig = model / "sub" / "model.sig"
    modelguard.sign(model, private_key=KEY, output=sig)
    assert check(model, sig).verified is not None
    (model / "model.sig").write_text("{}")  # a second "model.sig" at the top is not signed
    refused(check(model, sig), "MG313")


def test_deeply_nested_folders_do_not_crash(tmp_path: Path) -> None:
    """1100 nested folders (a legal path) holding an unsigned file: a typed refusal, not a
    RecursionError (the CLI prints "internal error" and exits 2)."""
    model, sig = signed_model(tmp_path)
    path = str(model)
    for _ in range(1100):
        path += "/d"
        os.mkdir(path)
    with open(path + "/modeling_evil.py", "w") as handle:
        handle.write("x")
    try:
        outcome = check(model, sig)
    except RecursionError:
        pytest.fail("RecursionError while listing the model")
    finally:  # pytest's recursive tmp_path cleanup would hit the same recursion limit
        os.unlink(path + "/modeling_evil.py")
        while path != str(model):
            os.rmdir(path)
            path = os.path.dirname(path)
    refused(outcome, "MG313", "MG315", "MG306")


# -- certificates -----------------------------------------------------------------------------


def _cert_model(tmp_path: Path, leaf_key: Any, chain: list[x509.Certificate]) -> tuple[Path, Path]:
    model = make_model(tmp_path)
    st = modelguard.build_manifest(model).to_statement()
    sig = write_signed(tmp_path / "c.sig", st, key=leaf_key, certificate_chain=chain)
    return model, sig


def _ca_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    digital_signature: bool = True,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def test_cert_leaf_with_server_auth_only_is_refused(tmp_path: Path) -> None:
    pki = make_pki().with_leaf(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    model, sig = _cert_model(tmp_path, pki.leaf_key, pki.chain())
    refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


def test_cert_leaf_issued_by_a_non_ca_is_refused(tmp_path: Path) -> None:
    pki = make_pki()
    key = ec_key()
    leaf = make_cert("mallory", key, (pki.leaf, pki.leaf_key))
    model, sig = _cert_model(tmp_path, key, [leaf, pki.leaf, pki.intermediate])
    refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


def test_path_length_zero_intermediate_followed_by_a_ca_is_refused(tmp_path: Path) -> None:
    pki = make_pki()
    k1, k2, kl = ec_key(), ec_key(), ec_key()
    i1 = make_cert("i1", k1, (pki.root, pki.root_key), ca=True, path_length=0)
    i2 = make_cert("i2", k2, (i1, k1), ca=True)
    leaf = make_cert("leaf", kl, (i2, k2))
    model, sig = _cert_model(tmp_path, kl, [leaf, i2, i1])
    refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


def test_expired_intermediate_is_refused(tmp_path: Path) -> None:
    pki = make_pki()
    ki, kl = ec_key(), ec_key()
    inter = make_cert(
        "old-int",
        ki,
        (pki.root, pki.root_key),
        ca=True,
        not_before=NOW - 9 * DAY,
        not_after=NOW - DAY,
    )
    leaf = make_cert("leaf", kl, (inter, ki))
    model, sig = _cert_model(tmp_path, kl, [leaf, inter])
    refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


def test_chain_with_extra_unrelated_certificates_is_not_a_crash(tmp_path: Path) -> None:
    pki, other = make_pki(), make_pki()
    model, sig = _cert_model(
        tmp_path, pki.leaf_key, [*pki.chain(), other.intermediate, other.root, other.leaf]
    )
    outcome = verify_report(model, sig, root_ca=pem(pki.root))
    assert outcome.verified is not None  # the extra certificates are harmless
    refused(verify_report(model, sig, root_ca=pem(other.root)), "MG302")


def test_trusted_root_used_directly_as_signing_certificate_is_refused(tmp_path: Path) -> None:
    """A CA certificate (basicConstraints cA=true) is not a code-signing end entity, even when
    its key usage includes digitalSignature."""
    key = ec_key()
    root = _ca_cert("root-with-ds", key, None)
    model, sig = _cert_model(tmp_path, key, [root])
    refused(verify_report(model, sig, root_ca=pem(root)), "MG302")


def test_intermediate_ca_used_as_signing_certificate_is_refused(tmp_path: Path) -> None:
    """A sub-CA certificate signs the model directly (no end-entity leaf): with a subject pin
    on the sub-CA's name this passes today, although cA=true certificates are never
    code-signing end entities."""
    pki = make_pki()
    key = ec_key()
    sub_ca = _ca_cert("team-ca", key, (pki.root, pki.root_key))
    model, sig = _cert_model(tmp_path, key, [sub_ca])
    refused(verify_report(model, sig, root_ca=pem(pki.root), subject="team-ca"), "MG302")


@pytest.mark.parametrize(
    ("pin", "value", "accepted"),
    [
        ("subject", "signer", True),
        ("subject", "CN=signer", True),
        ("subject", "sign", False),
        ("subject", "CN=signer,O=x", False),
        ("subject", "", False),
        ("san", "signer@example.com", True),
        ("san", "Signer@Example.com", False),
        ("san", "example.com", False),
        ("san", "", False),
        ("fingerprint", "COLONS", True),
        ("fingerprint", "PREFIX", False),
        ("fingerprint", "", False),
    ],
)
def test_certificate_pins_match_exactly(
    tmp_path: Path, pin: str, value: str, accepted: bool
) -> None:
    pki = make_pki()
    model, sig = _cert_model(tmp_path, pki.leaf_key, pki.chain())
    fp = hashlib.sha256(pki.leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    if value == "COLONS":
        value = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    elif value == "PREFIX":
        value = fp[:32]
    outcome = verify_report(model, sig, root_ca=pem(pki.root), **{pin: value})
    if accepted:
        assert outcome.verified is not None
    else:
        refused(outcome, "MG302")


def test_certificate_for_another_subject_fails_the_pin(tmp_path: Path) -> None:
    pki = make_pki()
    mallory = pki.with_leaf(cn="mallory", san_email="mallory@evil.example")
    model, sig = _cert_model(tmp_path, mallory.leaf_key, mallory.chain())
    refused(verify_report(model, sig, root_ca=pem(pki.root), subject="signer"), "MG302")
    refused(verify_report(model, sig, root_ca=pem(pki.root), san="signer@example.com"), "MG302")


def test_expired_and_future_leaf_are_refused(tmp_path: Path) -> None:
    pki = make_pki()
    for i, (nb, na) in enumerate(
        ((NOW - 20 * DAY, NOW - 10 * DAY), (NOW + 10 * DAY, NOW + 20 * DAY))
    ):
        leafy = pki.with_leaf(not_before=nb, not_after=na)
        (tmp_path / str(i)).mkdir()
        model, sig = _cert_model(tmp_path / str(i), leafy.leaf_key, leafy.chain())
        refused(verify_report(model, sig, root_ca=pem(pki.root)), "MG302")


# -- CLI --------------------------------------------------------------------------------------


def _cli(*args: str) -> int:
    return main(["verify", *args, "-q"])


def test_cli_exit_codes_for_each_failure_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, sig = signed_model(tmp_path)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(PUB)
    out = ["-o", str(tmp_path / "r.txt")]
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(pub), *out) == 0
    # unusable input: 2
    assert _cli(str(model), "--signature", str(tmp_path / "nope"), "--public-key", str(pub)) == 2
    assert _cli(str(tmp_path / "nomodel"), "--signature", str(sig), "--public-key", str(pub)) == 2
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(bad_key)) == 2
    assert _cli(str(model), "--signature", str(sig)) == 2  # no trust given
    # verification failures: 1
    other = tmp_path / "other.pem"
    other.write_bytes(pem(ATTACKER.public_key()))
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(other), *out) == 1
    garbage = tmp_path / "garbage.sig"
    garbage.write_text("{}")
    assert _cli(str(model), "--signature", str(garbage), "--public-key", str(pub), *out) == 1
    (model / "extra.py").write_text("x")
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(pub), *out) == 1
    (model / "extra.py").unlink()
    (model / "config.json").write_text("{}")
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(pub), *out) == 1
    capsys.readouterr()


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_cli_json_and_sarif_are_valid_and_carry_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    model, sig = signed_model(tmp_path)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(PUB)
    (model / "config.json").write_text("{}")
    capsys.readouterr()
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(pub), "--format", fmt) == 1
    text = capsys.readouterr().out
    document = json.loads(text)
    assert "MG311" in text
    if fmt == "sarif":
        assert document["version"] == "2.1.0"
        results = document["runs"][0]["results"]
        assert any(r["ruleId"] == "MG311" for r in results)


def test_cli_verify_scan_with_both_failing_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, sig = signed_model(tmp_path)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(PUB)
    (model / "config.json").write_text("{}")
    (model / "evil.pkl").write_bytes(pickle.dumps(os.system))
    capsys.readouterr()
    code = _cli(
        str(model), "--signature", str(sig), "--public-key", str(pub), "--scan", "--format", "json"
    )
    text = capsys.readouterr().out
    json.loads(text)
    assert code == 1
    assert "MG311" in text and "MG313" in text and "MG101" in text


@pytest.mark.parametrize("fail_on", ["critical", "never"])
def test_cli_verify_scan_policy_cannot_relax_verification_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fail_on: str
) -> None:
    """`verify --scan --policy P`: the scan policy's fail_on governs scanner findings; a failed
    verification (here a modified file, MG311 high) must still exit 1."""
    model, sig = signed_model(tmp_path)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(PUB)
    policy = tmp_path / "policy.toml"
    policy.write_text(f'fail_on = "{fail_on}"\n')
    (model / "config.json").write_text("{}")
    code = _cli(
        str(model),
        "--signature",
        str(sig),
        "--public-key",
        str(pub),
        "--scan",
        "--policy",
        str(policy),
        "-o",
        str(tmp_path / "r.txt"),
    )
    capsys.readouterr()
    assert code == 1, "a failed verification exited 0 under --scan"


def test_cli_verify_scan_keeps_medium_verification_failures_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MG307 (medium) makes plain `verify` exit 1; with --scan and a policy failing on high it
    must still exit 1 (verify refused the model)."""
    model, sig = signed_model(tmp_path)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(PUB)
    edit_bundle(
        sig, lambda doc: doc["dsseEnvelope"]["signatures"].append({"sig": "AAAA", "keyid": "x"})
    )
    policy = tmp_path / "policy.toml"
    policy.write_text('fail_on = "high"\n')
    out = ["-o", str(tmp_path / "r.txt")]
    assert _cli(str(model), "--signature", str(sig), "--public-key", str(pub), *out) == 1
    code = _cli(
        str(model),
        "--signature",
        str(sig),
        "--public-key",
        str(pub),
        "--scan",
        "--policy",
        str(policy),
        *out,
    )
    capsys.readouterr()
    assert code == 1


# -- time of check to time of use -------------------------------------------------------------


def _same_size_other_bytes(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    return bytes(data)


def test_toctou_replace_by_rename_with_mtime_preserved(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    verified = modelguard.verify(model, sig, public_key=PUB)
    target = model / "model.safetensors"
    st = os.stat(target)
    tmp = model / ".tmp-swap"
    tmp.write_bytes(_same_size_other_bytes(target))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, target)
    with pytest.raises(FileChangedError):
        verified.open("model.safetensors")
    with pytest.raises(FileChangedError):
        verified.check()


def test_toctou_in_place_rewrite_with_mtime_preserved(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    verified = modelguard.verify(model, sig, public_key=PUB)
    target = model / "model.safetensors"
    st = os.stat(target)
    with open(target, "r+b") as handle:
        handle.write(_same_size_other_bytes(target)[:1])
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(FileChangedError):
        verified.open("model.safetensors")


def test_toctou_delete_and_recreate_reusing_the_inode(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    verified = modelguard.verify(model, sig, public_key=PUB)
    target = model / "model.safetensors"
    st = os.stat(target)
    other = _same_size_other_bytes(target)
    target.unlink()
    target.write_bytes(other)  # ext4/tmpfs often hand out the freed inode number again
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(FileChangedError):
        verified.open("model.safetensors")


def test_toctou_file_swapped_for_a_link_after_verify(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    verified = modelguard.verify(model, sig, public_key=PUB)
    target = model / "config.json"
    keep = tmp_path / "keep.json"
    os.replace(target, keep)
    target.symlink_to(keep)  # same inode behind a link
    with pytest.raises(FileChangedError):
        verified.open("config.json")


@pytest.mark.parametrize("kind", ["public_key", "root_ca", "pq_public_key"])
def test_single_key_or_certificate_objects_are_accepted_as_trust(tmp_path: Path, kind: str) -> None:
    """`verify()` documents key objects as trust; one object (not in a list) must work, or
    at worst be a ConfigError, never a TypeError from iterating it."""
    model, sig = signed_model(tmp_path)
    pki = make_pki()
    options: dict[str, Any] = {
        "public_key": {"public_key": KEY.public_key()},
        "root_ca": {"root_ca": pki.root},
        "pq_public_key": {"public_key": PUB, "pq_public_key": generate_pq_key().public_key()},
    }[kind]
    try:
        outcome = verify_report(model, sig, **options)
    except modelguard.ConfigError:
        return
    except TypeError as exc:
        pytest.fail(f"TypeError for a single {kind} object: {exc}")
    if kind == "public_key":
        assert outcome.verified is not None


def test_failures_are_typed_never_value_error(tmp_path: Path) -> None:
    model, sig = signed_model(tmp_path)
    edit_bundle(sig, lambda doc: doc["dsseEnvelope"].__setitem__("payload", "!!!"))
    with pytest.raises(VerificationError) as info:
        modelguard.verify(model, sig, public_key=PUB)
    assert info.value.rule_id == "MG303"
    assert not isinstance(info.value, ValueError)


def test_expired_signed_expiry_and_wrong_revision_are_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    sig = tmp_path / "s.sig"
    modelguard.sign(
        model,
        private_key=KEY,
        output=sig,
        revision="v1",
        expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )
    assert check(model, sig, revision="v1").verified is not None
    refused(check(model, sig, revision="v2"), "MG310")
    refused(check(model, sig, at=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)), "MG309")
