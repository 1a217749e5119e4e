"""The integrity commands: `manifest`, `sign`, `verify` and `keygen`.

Same conventions as `scan`: the report (or the manifest) on stdout, messages on stderr, exit 0
when verified, 1 when verification failed (a blocking finding), 2 for unusable input (a missing
model, signature or key file, bad options) or a file that could not be read.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelguard.policy import Policy, TrustedSigner
    from modelguard.results import ScanReport
    from modelguard.verification import VerificationOutcome

__all__ = ["add_parsers"]

_FORMATS = ("text", "json", "sarif")
_ALGORITHMS = ("sha256", "blake2b", "blake3")
_KEY_TYPES = ("p256", "p384", "p521", "ml-dsa-65")

_VERIFY_EPILOG = """\
exit codes:
  0  the model matches the signature and the signer is the trusted one
  1  verification failed (or, with --scan, a finding blocks)
  2  unusable input: missing model, signature or key, bad options, an unreadable file
"""


def _hashing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--algorithm", choices=_ALGORITHMS, default="sha256", help="file digest (default sha256)"
    )
    parser.add_argument(
        "--shard-size", type=int, metavar="BYTES", help="hash files in shards of BYTES"
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATTERN",
        help="model-relative name or glob to leave out (repeatable)",
    )
    parser.add_argument(
        "--allow-links",
        action="store_true",
        help="follow symlinks that resolve inside the model or a Hugging Face blobs/ folder",
    )
    parser.add_argument("--workers", type=int, metavar="N", help="hashing threads")


def add_parsers(commands: Any, epilog: str) -> None:
    """Add the integrity sub-commands to `commands` (an argparse sub-parsers object)."""
    raw = argparse.RawDescriptionHelpFormatter
    manifest = commands.add_parser(
        "manifest",
        help="print the OMS manifest (in-toto statement) of a model",
        description="Digest every file of a model and print the OMS in-toto statement.",
    )
    manifest.add_argument("path", metavar="PATH", help="model folder or file")
    manifest.add_argument("-o", "--output", metavar="FILE", help="write to FILE")
    _hashing_options(manifest)
    manifest.set_defaults(handler=_cmd_manifest)

    sign = commands.add_parser(
        "sign",
        help="sign a model (OMS signature)",
        description="Sign a model folder or file with an EC key, a key and certificate, or "
        "Sigstore keyless; write an OMS Sigstore bundle (default: model.sig in the folder, or "
        "FILE.sig beside a file).",
        formatter_class=raw,
    )
    sign.add_argument("path", metavar="PATH", help="model folder or file")
    method = sign.add_mutually_exclusive_group(required=True)
    method.add_argument("--key", metavar="KEY", help="EC private key (PEM; P-256/384/521)")
    method.add_argument("--sigstore", action="store_true", help="Sigstore keyless (online)")
    sign.add_argument("--password-env", metavar="VAR", help="read the key password from $VAR")
    sign.add_argument("--certificate", metavar="CERT", help="signing certificate for --key")
    sign.add_argument(
        "--chain", action="append", default=[], metavar="CHAIN", help="intermediate cert(s)"
    )
    sign.add_argument("--identity-token", metavar="TOKEN", help="OIDC token for --sigstore")
    sign.add_argument("--staging", action="store_true", help="Sigstore staging instance")
    sign.add_argument("--pq-key", metavar="KEY", help="ML-DSA-65 key for a co-signature")
    sign.add_argument("--repository", metavar="ID", help="bind the signature to a repository")
    sign.add_argument("--revision", metavar="REV", help="bind the signature to a revision")
    sign.add_argument("--expires", metavar="DATE", help="ISO 8601 date the signature expires")
    sign.add_argument("-o", "--output", metavar="FILE", help="where to write the signature")
    sign.add_argument("-q", "--quiet", action="store_true", help="no message on stderr")
    sign.add_argument("--no-progress", action="store_true", help="no progress display")
    _hashing_options(sign)
    sign.set_defaults(handler=_cmd_sign)

    verify = commands.add_parser(
        "verify",
        help="verify a model against its OMS signature",
        description="Verify a model folder or file against an OMS signature, closed-world: "
        "every signed file present and unchanged, no unsigned file, no refused link, and the "
        "signer the one you trust. Give exactly one trust: --public-key, --root-ca, or "
        "--identity with --issuer; without one, the [[trusted_signers]] of the policy file "
        "(--policy, or the discovered one) are used and any one of them may verify.",
        epilog=_VERIFY_EPILOG,
        formatter_class=raw,
    )
    verify.add_argument("path", metavar="PATH", help="model folder or file")
    verify.add_argument("--signature", metavar="SIG", help="the bundle (default: model.sig)")
    verify.add_argument("--public-key", action="append", metavar="KEY", help="trusted EC key")
    verify.add_argument("--root-ca", action="append", metavar="CA", help="trusted root cert(s)")
    verify.add_argument("--subject", metavar="S", help="pin the certificate subject (or CN)")
    verify.add_argument("--san", metavar="NAME", help="pin a certificate SAN (email/URI/DNS)")
    verify.add_argument("--fingerprint", metavar="SHA256", help="pin the leaf certificate")
    verify.add_argument("--identity", metavar="ID", help="Sigstore signer identity")
    verify.add_argument("--issuer", metavar="URL", help="Sigstore OIDC issuer")
    verify.add_argument("--trusted-root", metavar="FILE", help="Sigstore trusted_root.json")
    verify.add_argument("--pq-public-key", action="append", metavar="KEY", help="ML-DSA key")
    verify.add_argument(
        "--require-pq", action="store_true", help="require a valid ML-DSA-65 co-signature"
    )
    verify.add_argument(
        "--allow-legacy", action="store_true", help="accept legacy (v0.1/v0.2) signatures"
    )
    verify.add_argument(
        "--allow-links",
        action="store_true",
        help="allow symlinks that resolve inside the model or a Hugging Face blobs/ folder",
    )
    verify.add_argument(
        "--ignore", action="append", default=[], metavar="PATTERN", help="tolerate unsigned"
    )
    verify.add_argument("--repository", metavar="ID", help="require this signed repository")
    verify.add_argument("--revision", metavar="REV", help="require this signed revision")
    verify.add_argument("--scan", action="store_true", help="also scan the model; one report")
    verify.add_argument(
        "--policy", metavar="FILE", help="policy file: trusted signers, and the scan policy"
    )
    verify.add_argument("--workers", type=int, metavar="N", help="hashing threads")
    verify.add_argument("--format", choices=_FORMATS, default="text", help="report format")
    verify.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    verify.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    verify.add_argument("--no-progress", action="store_true", help="no progress display")
    verify.set_defaults(handler=_cmd_verify)

    keygen = commands.add_parser(
        "keygen",
        help="create a signing key pair",
        description="Write a new private key (PEM, mode 0600) and its public key.",
    )
    keygen.add_argument("--type", choices=_KEY_TYPES, default="p256", help="key type")
    keygen.add_argument("-o", "--output", required=True, metavar="FILE", help="private key")
    keygen.add_argument("--public-out", metavar="FILE", help="public key (default FILE.pub)")
    keygen.add_argument("--password-env", metavar="VAR", help="encrypt with the password in $VAR")
    keygen.set_defaults(handler=_cmd_keygen)
    del epilog


def _password(var: str | None) -> bytes | None:
    from modelguard.errors import ConfigError

    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"environment variable {var} is not set")
    return value.encode()


def _write_text(path: str | None, text: str) -> int:
    from modelguard.cli import ExitCode, console

    return ExitCode.OK if console.write_output(path, text) else ExitCode.USAGE


def _cmd_manifest(args: argparse.Namespace) -> int:
    import json

    from modelguard.cli import ExitCode, console
    from modelguard.errors import ModelGuardError
    from modelguard.manifest import build_manifest

    try:
        manifest = build_manifest(
            args.path,
            algorithm=args.algorithm,
            shard_size=args.shard_size,
            ignore_paths=args.ignore,
            allow_links=args.allow_links,
            workers=args.workers,
        )
    except ModelGuardError as exc:
        console.error(str(exc))
        rule = getattr(exc, "rule_id", None)
        return ExitCode.FINDINGS if rule else ExitCode.USAGE
    text = json.dumps(manifest.to_statement(), indent=2, sort_keys=True, ensure_ascii=False)
    return _write_text(args.output, text + "\n")


def _cmd_sign(args: argparse.Namespace) -> int:
    from modelguard.cli import ExitCode, console
    from modelguard.errors import ModelGuardError, VerificationError
    from modelguard.signer import sign

    show = not (args.quiet or args.no_progress) and console.is_tty(sys.stderr)
    try:
        with console.byte_progress(show, "hashing") as progress:
            signed = sign(
                args.path,
                private_key=args.key,
                password=_password(args.password_env),
                certificate=args.certificate,
                chain=args.chain,
                sigstore=args.sigstore,
                identity_token=args.identity_token,
                staging=args.staging,
                pq_key=args.pq_key,
                pq_password=_password(args.password_env) if args.pq_key else None,
                output=args.output,
                algorithm=args.algorithm,
                shard_size=args.shard_size,
                ignore=args.ignore,
                allow_links=args.allow_links,
                repository=args.repository,
                revision=args.revision,
                expires=args.expires,
                workers=args.workers,
                progress=progress,
            )
    except VerificationError as exc:  # the model cannot be signed as it is (names, links)
        console.error(f"{exc.rule_id}: {exc}")
        return ExitCode.FINDINGS
    except ModelGuardError as exc:
        console.error(str(exc))
        return ExitCode.USAGE
    if not args.quiet:
        files = len(signed.manifest.by_file())
        console.write(
            sys.stderr,
            f"modelguard: signed {files} file(s); root digest sha256:"
            f"{signed.manifest.root_digest()}; signature written to {signed.signature}\n",
        )
    return ExitCode.OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from modelguard.cli import ExitCode, console, exit_code
    from modelguard.errors import ModelGuardError
    from modelguard.report import OutputFormat, render
    from modelguard.report.text import summary_line
    from modelguard.verification import combine_reports

    fmt = OutputFormat(args.format)
    show = not (args.quiet or args.no_progress) and console.is_tty(sys.stderr)
    trust_given = any(
        value is not None for value in (args.public_key, args.root_ca, args.identity, args.issuer)
    )
    try:
        policy = _verify_policy(args) if args.scan or not trust_given else None
        _refuse_trust_inside(args, None if trust_given else policy)
        with console.byte_progress(show, "verifying") as progress:
            if trust_given:
                outcome = _verify_once(args, progress, {})
            else:
                assert policy is not None
                outcome = _verify_with_policy(args, progress, policy)
        report: ScanReport = outcome.report
        if args.scan:
            from modelguard.scanner import scan

            report = combine_reports(report, scan(args.path, policy=policy))
    except ModelGuardError as exc:
        console.error(str(exc))
        return ExitCode.USAGE
    color = fmt is OutputFormat.TEXT and args.output is None and console.wants_color(sys.stdout)
    code = _write_text(args.output, render(report, fmt, color=color))
    if code != ExitCode.OK:
        return code
    if not args.quiet:
        verdict = "verified" if outcome.verified is not None else "NOT verified"
        summary = summary_line(report).removeprefix("modelguard: ")
        console.write(sys.stderr, f"modelguard: {verdict}; {summary}\n")
    code = exit_code(report)
    if args.scan and ExitCode.OK != exit_code(outcome.report) != code:
        # The scan policy's fail_on never relaxes a failed verification (a tampered or
        # unsigned model exits 1 whatever the scan threshold says).
        code = max(code, exit_code(outcome.report), key=_exit_rank)
    return code


def _verify_policy(args: argparse.Namespace) -> Policy:
    """Load `--policy`, or discover one (never one that lies inside the model folder)."""
    from modelguard.cli import console
    from modelguard.policy import load_policy

    if args.policy is not None:
        return load_policy(args.policy)
    policy = load_policy(None, scan_targets=[args.path])
    if policy.ignored and not args.quiet:
        console.write(
            sys.stderr,
            f"modelguard: warning: not using {policy.ignored}: it lies inside the model "
            "(pass it with --policy to use it)\n",
        )
    return policy


def _refuse_trust_inside(args: argparse.Namespace, policy: Policy | None) -> None:
    """Refuse trust material (keys, certificates, a trusted root) inside the model itself.

    Whoever can change the model can change a key shipped with it and re-sign: the trust must
    come from outside. Both where each file lies and what it resolves to are checked.

    Args:
        args: the command line (its trust options are checked).
        policy: the policy whose `[[trusted_signers]]` are used, or None.

    Raises:
        ConfigError: naming the first such file and where it was given.
    """
    from modelguard.errors import ConfigError
    from modelguard.policy import policy_inside

    files: list[tuple[str, str]] = []
    for option, values in (
        ("--public-key", args.public_key),
        ("--root-ca", args.root_ca),
        ("--pq-public-key", args.pq_public_key),
        ("--trusted-root", [args.trusted_root] if args.trusted_root else None),
    ):
        files.extend((os.fspath(value), option) for value in values or ())
    if policy is not None:
        where = policy.source or "the policy"
        for number, signer in enumerate(policy.trusted_signers, 1):
            origin = f"trusted signer {number} of {where}"
            files.extend((name, origin) for name in signer.trust_files())
    for name, origin in files:
        if policy_inside(name, [args.path]):
            raise ConfigError(
                f"{origin}: refusing {name}: it lies inside the model being verified "
                f"({args.path}); whoever can change the model can change it, so keep keys "
                "and certificates outside the model folder"
            )


def _verify_once(
    args: argparse.Namespace, progress: Any, trust: dict[str, Any]
) -> VerificationOutcome:
    """Run `verify_report` with the command line's options; `trust` overrides the trust."""
    from modelguard.verification import verify_report

    options: dict[str, Any] = {
        "public_key": args.public_key,
        "root_ca": args.root_ca,
        "subject": args.subject,
        "san": args.san,
        "fingerprint": args.fingerprint,
        "identity": args.identity,
        "issuer": args.issuer,
        "trusted_root": args.trusted_root,
    }
    options.update(trust)
    return verify_report(
        args.path,
        args.signature,
        **options,
        pq_public_key=args.pq_public_key,
        require_pq=args.require_pq,
        allow_legacy=args.allow_legacy,
        allow_links=args.allow_links,
        ignore=args.ignore,
        repository=args.repository,
        revision=args.revision,
        workers=args.workers,
        progress=progress,
    )


def _signer_trust(signer: TrustedSigner, args: argparse.Namespace) -> dict[str, Any]:
    """The `verify_report` trust options of one policy signer (all others cleared)."""
    trust: dict[str, Any] = dict.fromkeys(
        ("public_key", "root_ca", "subject", "san", "fingerprint", "identity", "issuer")
    )
    if signer.kind == "key":
        trust["public_key"] = [signer.key]
    elif signer.kind == "certificate":
        trust["root_ca"] = list(signer.certificate_chain)
        # The command line's pins still apply; the signer's identity pins a SAN.
        trust.update(subject=args.subject, san=signer.identity or args.san)
        trust["fingerprint"] = args.fingerprint
    else:
        trust.update(identity=signer.identity, issuer=signer.issuer)
    return trust


def _verify_with_policy(
    args: argparse.Namespace, progress: Any, policy: Policy
) -> VerificationOutcome:
    """Verify against each of the policy's trusted signers until one verifies the signature.

    A signer that did not make the signature (MG301, MG302) is skipped, and so is one whose
    key or certificate file cannot be used (missing, unreadable, malformed); the first signer
    that verifies the signature decides, even when the model then fails (a changed file is a
    failure whatever other signers there are). The report notes which signer it was, and any
    signer that could not be used.

    Raises:
        ConfigError: the policy names no trusted signer, or no signer verified the signature
            and at least one could not be used (it might have been the one).
    """
    import dataclasses

    from modelguard.errors import ConfigError

    where = policy.source or "the default policy"
    if not policy.trusted_signers:
        raise ConfigError(
            "give a trust: --public-key, --root-ca, or --identity with --issuer, or list "
            f"[[trusted_signers]] in the policy file (--policy); {where} has none"
        )
    tried: list[str] = []
    unusable: list[str] = []
    first: VerificationOutcome | None = None
    for number, signer in enumerate(policy.trusted_signers, 1):
        label = f"trusted signer {number} of {where} ({signer.describe()})"
        try:
            outcome = _verify_once(args, progress, _signer_trust(signer, args))
        except ConfigError as exc:  # its trust material cannot be used: try the others
            unusable.append(f"{label} could not be used: {exc}")
            continue
        failure = outcome.first_failure
        if outcome.verified is not None or (
            failure is not None and failure.rule_id not in _NOT_THIS_SIGNER
        ):
            reason = f"; reason: {signer.reason}" if signer.reason else ""
            verb = "verified by" if outcome.verified is not None else "signature by"
            notes = (*outcome.report.notes, f"{verb} {label}{reason}", *unusable)
            return dataclasses.replace(
                outcome, report=dataclasses.replace(outcome.report, notes=notes)
            )
        first = first or outcome
        why = failure.rule_id if failure is not None else "not verified"
        tried.append(f"{number} ({signer.describe()}): {why}")
    if unusable:
        # The signer that could not be used may be the one that signed: no verdict.
        others = f"; the others did not verify it: {'; '.join(tried)}" if tried else ""
        raise ConfigError("; ".join(unusable) + others)
    assert first is not None
    note = f"no trusted signer of {where} verified the signature: " + "; ".join(tried)
    return dataclasses.replace(
        first, report=dataclasses.replace(first.report, notes=(*first.report.notes, note))
    )


_NOT_THIS_SIGNER = frozenset({"MG301", "MG302"})
"""Failures that mean "not made by this signer": the next trusted signer is tried."""


def _exit_rank(code: int) -> int:
    """Order exit codes by severity: findings (1) over incomplete (2) over OK (0)."""
    return {0: 0, 2: 1, 1: 2}.get(int(code), 1)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from modelguard.cli import ExitCode, console
    from modelguard.errors import ModelGuardError
    from modelguard.signing.keygen import generate_key_pem

    try:
        private_pem, public_pem = generate_key_pem(args.type, _password(args.password_env))
    except ModelGuardError as exc:
        console.error(str(exc))
        return ExitCode.USAGE
    public_out = args.public_out or args.output + ".pub"
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        with open(public_out, "wb") as handle:
            handle.write(public_pem)
    except OSError as exc:
        console.error(f"cannot write the key: {exc.strerror or exc} ({exc.filename})")
        return ExitCode.USAGE
    console.write(sys.stderr, f"modelguard: wrote {args.output} and {public_out}\n")
    return ExitCode.OK
