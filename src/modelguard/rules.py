"""The catalogue of rule ids: stable ids, default severities and help text.

Ids are grouped by area: MG0xx the scan itself could not finish (these make a result
incomplete rather than carrying a severity; MG01x are findings about the policy file itself),
MG1xx pickle semantics, MG2xx containers and file
structure, MG3xx integrity and signatures (`modelguard verify`), MG4xx non-pickle formats and
config-as-code, MG5xx poisoning-risk indicators (evidence, not verdicts), MG60x the Hugging
Face cache (MG601-MG603 incomplete, MG604 a finding). `modelguard explain
RULE` prints `Rule.help`; SARIF carries the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelguard.results import Severity

__all__ = ["INTEGRITY_RULES", "RULES", "Rule", "get_rule", "integrity_rule"]

INTEGRITY_RULES = frozenset({"MG604"})
"""Integrity rules outside MG3xx: like MG3xx, never suppressed nor severity-overridden."""


def integrity_rule(rule_id: str) -> bool:
    """Return True for integrity failures (MG3xx verification, MG604 cache blob digest): a
    policy may neither suppress them nor change their severity."""
    return rule_id.startswith("MG3") or rule_id in INTEGRITY_RULES


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule.

    Attributes:
        id: stable id, e.g. `MG101`.
        name: short kebab-case name.
        severity: default severity; None for MG0xx rules, which mark a scan incomplete.
        summary: one line.
        help: a paragraph: what it means, why it matters, what to do.
    """

    id: str
    name: str
    severity: Severity | None
    summary: str
    help: str


_C, _H, _M, _L, _I = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO

RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "MG001",
            "read-error",
            None,
            "A file could not be read.",
            "The file could not be opened or read (permissions, I/O error, vanished while "
            "scanning). Nothing about its content is known, so the scan is incomplete and the "
            "exit code is 2. Fix access to the file and scan again.",
        ),
        Rule(
            "MG002",
            "parse-error",
            None,
            "A stream or container is malformed or truncated; analysis stopped there.",
            "The pickle stream, archive or header could not be parsed to the end. Everything "
            "seen before the error is still reported (a loader runs the calls it meets before "
            "it fails), but what follows is unknown, so the file is never reported as safe. "
            "Treat the file as untrusted; obtain an intact copy.",
        ),
        Rule(
            "MG003",
            "limit-reached",
            None,
            "A named scanner limit was reached; the rest was not analysed.",
            "A bound such as max_depth, max_members, max_total_bytes or max_ratio stopped the "
            "analysis (the reason names the limit). Hostile files use huge or deeply nested "
            "content to exhaust scanners; modelguard stops and reports the file as "
            "incomplete instead. If the file is trusted to be large, raise the limit in the "
            "policy file ([limits]).",
        ),
        Rule(
            "MG004",
            "unsupported-content",
            None,
            "Content was recognised but this version cannot analyse it.",
            "The file (or a member) is a format that can carry code or file access on load "
            "(for example ONNX, GGUF, HDF5, TorchScript code, or 7z/lz4/zstd without the optional "
            "readers) but this version of "
            "modelguard does not analyse it, so it is not reported safe. Scan it with a tool "
            "that supports the format, or convert it (for example to safetensors).",
        ),
        Rule(
            "MG005",
            "lfs-pointer",
            None,
            "The file is a Git LFS pointer, not the model content.",
            "A Git LFS pointer names content that was never downloaded. The real file is not "
            "here to be scanned, so the result is incomplete. Fetch the LFS object (git lfs "
            "pull) and scan again.",
        ),
        Rule(
            "MG010",
            "suppression-expired",
            _L,
            "A policy suppression has passed its expiry date and no longer applies.",
            "A [[suppress]] entry of the policy file carries an `expires` date that has passed "
            "(the finding names the entry, its rules, path glob and reason). The findings it "
            "used to hide are reported again and can block. Review them: fix the artifact, or "
            "renew the entry with a new date and an up-to-date reason.",
        ),
        Rule(
            "MG101",
            "dangerous-global",
            _C,
            "The pickle imports a known-dangerous callable or module.",
            "A GLOBAL, STACK_GLOBAL, INST or EXT reference names a callable from a family that "
            "runs code, touches files, processes or the network, resolves names dynamically, "
            "builds code objects or reaches interpreter internals (evidence names the family). "
            "Loading the file imports it and usually calls it: this is how pickle-based "
            "malware runs. Do not load the file; use a safetensors copy from a trusted source.",
        ),
        Rule(
            "MG102",
            "unknown-global",
            _M,
            "The pickle imports a callable that is not on the allowlist.",
            "Only plain data constructors (tensor rebuild helpers, NumPy reconstruction, "
            "collections, library classes that are known to be inert) are allowlisted. Anything "
            "else could run code when the file is loaded. A common benign cause is a "
            "whole-model save that references the saving script's own classes "
            "(`__main__.MyNet`), which torch's weights_only loader refuses too. If you trust "
            "the name, add it to the allowlist of your policy file with a reason.",
        ),
        Rule(
            "MG103",
            "dangerous-call",
            _C,
            "A call reaches something dangerous indirectly, or calls a runtime value.",
            "A harmless-looking callable (getattr, functools.partial, operator callers, map, "
            "filter, itertools, type(), name resolvers) is applied to arguments that reach a "
            "dangerous or unknown callable, or the stream calls the result of another call, "
            "which a static reader cannot name. This is how scanners that judge names alone "
            "are bypassed. Do not load the file.",
        ),
        Rule(
            "MG104",
            "state-mutation",
            _C,
            "The pickle changes interpreter state that later loads trust.",
            "BUILD or setattr on a module, class or function object, copyreg registration, or "
            "writes into sys.modules change what names mean for the rest of this load and for "
            "later loads in the same process (ShadowPickle-style module overwrites, copyreg "
            "EXT tricks). Benign model files never do this. Do not load the file.",
        ),
        Rule(
            "MG105",
            "unresolved-extension",
            _H,
            "An EXT opcode refers to a copyreg code the stream did not register.",
            "EXT1/EXT2/EXT4 resolve a callable through the process-wide copyreg extension "
            "registry, which is empty in a fresh interpreter. A code the stream did not "
            "register itself depends on state set up elsewhere (another file loaded earlier) "
            "and cannot be judged statically.",
        ),
        Rule(
            "MG106",
            "nested-loader",
            _C,
            "A loader inside the pickle reads a second payload that is not embedded.",
            "The stream calls a deserialiser (pickle, torch.load, numpy.load, joblib.load, "
            "pandas.read_pickle, marshal) on a path or a runtime value rather than embedded "
            "bytes, so the second payload cannot be checked from this file (a trampoline). "
            "Embedded bytes are analysed recursively and reported on their own.",
        ),
        Rule(
            "MG110",
            "parser-differential",
            _H,
            "CPython would read this stream differently from a naive opcode walk.",
            "The stream relies on reading rules where tools disagree, for example an opcode "
            "argument that runs past the end of its FRAME (CPython reads on past the frame), a "
            "FRAME inside a frame, or opcodes hidden in what a naive reader takes to be data. "
            "Such streams exist to hide payloads from scanners. Both readings were analysed.",
        ),
        Rule(
            "MG111",
            "trailing-data",
            _L,
            "Bytes follow the last pickle and are not another pickle.",
            "pickle.load stops at STOP, so the extra bytes are ignored by a plain load, but "
            "readers that continue (legacy torch, joblib, custom loaders) may interpret them. "
            "Often a sign of a polyglot or a damaged file.",
        ),
        Rule(
            "MG112",
            "stacked-pickles",
            _I,
            "The stream holds several pickles one after another.",
            "Legacy torch files and joblib dumps legitimately stack pickles; every one of them "
            "was analysed, because the loader reads them all.",
        ),
        Rule(
            "MG113",
            "protocol-anomaly",
            _L,
            "A PROTO opcode is misplaced, repeated or names an unknown protocol.",
            "Picklers write PROTO once at the start. Other placements are accepted by CPython "
            "but are typical of hand-crafted streams.",
        ),
        Rule(
            "MG114",
            "setitem-on-non-dict",
            _H,
            "SETITEM or SETITEMS is applied to something that is not a dict.",
            "Picklers write SETITEM(S) only after building a dict. Applied to a list, a "
            "string or a persistent object it is hand-crafted: torch's weights_only "
            "unpickler before 2.10 corrupted memory on it (CVE-2026-24747), so a file that "
            "passes a weights_only load can still attack older torch. Do not load the file.",
        ),
        Rule(
            "MG201",
            "extension-mismatch",
            _L,
            "The file extension contradicts the content.",
            "Format is decided by content, never by extension. A pickle named .safetensors, "
            ".json or .txt is a classic way to slip past extension-based scanners and reviews; "
            "the content was analysed for what it really is.",
        ),
        Rule(
            "MG202",
            "polyglot",
            _H,
            "Several parsers accept the file as different formats.",
            "For example a pickle followed by a zip: pickle.load runs the pickle while "
            "zip-based scanners look only at the archive. Every reading was analysed. Benign "
            "tools do not write such files.",
        ),
        Rule(
            "MG203",
            "zip-reader-disagreement",
            _H,
            "Python's zipfile and PyTorch's zip reader would see different members.",
            "Duplicate member names, a local header that disagrees with the central directory, "
            "or entries only one reader can find let an archive show a scanner one thing and "
            "the loader another (CVE-2025-1944 class). Both views were analysed.",
        ),
        Rule(
            "MG204",
            "zip-integrity",
            _M,
            "A zip member has a bad CRC or unusual flag bits that loaders ignore.",
            "PyTorch's reader ignores CRCs and the encryption and other flag bits that make "
            "Python's zipfile refuse a member (CVE-2025-1945, CVE-2025-10156). The member was "
            "read the tolerant way and analysed, but the archive was tampered with or "
            "damaged.",
        ),
        Rule(
            "MG205",
            "prepended-data",
            _L,
            "An archive is preceded by bytes that are not part of it.",
            "Data before the first zip entry is how self-extracting and polyglot files are "
            "built. The leading bytes were analysed on their own.",
        ),
        Rule(
            "MG206",
            "numpy-object-array",
            _L,
            "A NumPy array has object dtype: its data is a pickle.",
            "numpy.load(allow_pickle=True) unpickles object arrays. The embedded pickle was "
            "analysed and its findings are reported separately; prefer plain dtypes.",
        ),
        Rule(
            "MG210",
            "unknown-format",
            _I,
            "The content is none of the formats modelguard knows.",
            "The file is not a pickle, archive, compressed wrapper or model format known to "
            "modelguard. It is listed so that nothing is silently skipped; it does not block "
            "by itself.",
        ),
        # -- MG4xx: non-pickle formats and config-as-code -----------------------------------
        Rule(
            "MG301",
            "signature-invalid",
            _H,
            "The signature does not verify over the signed manifest.",
            "The DSSE signature in the bundle does not verify with the trusted key, certificate "
            "or Sigstore identity, or the bundle holds no signature at all. The manifest it "
            "carries cannot be trusted, so no file of the model is verified. Obtain the model "
            "and its signature again from the publisher.",
        ),
        Rule(
            "MG302",
            "signer-untrusted",
            _H,
            "The signature is valid but was not made by the signer the policy trusts.",
            "The key hint, certificate chain, pinned subject or fingerprint, certificate "
            "validity at the current time, key usage, or Sigstore identity and OIDC issuer do "
            "not match what was asked for. A valid signature by someone else proves nothing "
            "about this model. Check which identity you expect, and that it is the publisher's.",
        ),
        Rule(
            "MG303",
            "bundle-invalid",
            _H,
            "The signature file is not a well-formed OMS Sigstore bundle.",
            "The file is not JSON, lacks the DSSE envelope or the verification material, "
            "carries an unknown media type, payload type, statement type or predicate, or "
            "mixes material kinds. Nothing in it can be verified. The evidence names the field.",
        ),
        Rule(
            "MG304",
            "legacy-signature",
            _H,
            "The signature uses a legacy form (v0.1 predicate or legacy DSSE encoding).",
            "Signatures made by model-signing before v0.3 sign a per-file predicate without a "
            "root digest and use a non-standard DSSE pre-authentication encoding. They are "
            "refused unless verification is run with the legacy switch (`--allow-legacy`), in "
            "which case this finding is reported at low severity. Re-sign the model with a "
            "current signer.",
        ),
        Rule(
            "MG305",
            "manifest-invalid",
            _H,
            "The signed manifest is inconsistent.",
            "The root digest does not recompute from the resources, a resource is malformed or "
            "listed twice, the serialization is unknown, or modelguard's name-binding digest "
            "(which, unlike the OMS root digest, covers file names and sizes) does not match. "
            "A consistent signer never produces this: treat the signature as forged.",
        ),
        Rule(
            "MG306",
            "unsafe-name",
            _H,
            "A signed or present file name is unsafe or ambiguous.",
            "Names with `..`, absolute paths, backslashes, NUL, undecodable bytes, or two names "
            "that are the same after Unicode normalisation or case folding are refused: a "
            "loader or file system could resolve them to a different file than the one "
            "verified.",
        ),
        Rule(
            "MG307",
            "extra-signature",
            _M,
            "The envelope carries a signature that was not verified.",
            "DSSE envelopes may hold several signatures, but OMS verifiers read only the first. "
            "An additional signature that is neither the verified signature nor a valid "
            "ML-DSA co-signature is reported rather than ignored: it may be an attempt to "
            "confuse a verifier that reads another entry.",
        ),
        Rule(
            "MG308",
            "pq-cosignature",
            _H,
            "The ML-DSA co-signature is missing, untrusted or invalid.",
            "The policy requires a post-quantum ML-DSA-65 (FIPS 204) co-signature over the same "
            "payload, or one is present and does not verify. A hybrid ECDSA plus ML-DSA "
            "signature stays trustworthy if either scheme is broken later.",
        ),
        Rule(
            "MG309",
            "signature-expired",
            _H,
            "The signature's signed expiry date has passed.",
            "modelguard signatures may carry an expiry in the subject annotations. After that "
            "date the signer no longer vouches for this model (for example a revision that "
            "was later found vulnerable). Obtain a current signed revision.",
        ),
        Rule(
            "MG310",
            "binding-mismatch",
            _H,
            "The signed repository or revision is not the one expected.",
            "The signature binds the model to a repository id and revision (subject "
            "annotations) that differ from what the verification asked for. A valid signature "
            "for another model, or an older revision, is being presented for this one.",
        ),
        Rule(
            "MG311",
            "file-modified",
            _H,
            "A signed file's content differs from the signed digest.",
            "The file's digest (or size) does not match the manifest: it was changed after "
            "signing. The evidence has both digests. Do not load the model.",
        ),
        Rule(
            "MG312",
            "file-missing",
            _H,
            "A signed file is missing.",
            "The manifest lists a file that is not in the model folder. A loader may fall "
            "back to another file, or fetch one, when a file it expects is absent.",
        ),
        Rule(
            "MG313",
            "file-unsigned",
            _H,
            "A file is present that the signature does not cover.",
            "Verification is closed-world: a file that nobody signed (a `modeling_*.py` for "
            "remote code, a pickle weights file a loader prefers) can change what loading "
            "does. Only names the policy allows (the signature itself, `.gitattributes`, "
            "`.cache/huggingface/**`, given patterns) are exempt, and those are listed.",
        ),
        Rule(
            "MG314",
            "symlink-refused",
            _H,
            "A symbolic link is in the model, or one resolves outside it.",
            "Links are refused by default: the signature covers content, not where a link "
            "points, so a link can be re-pointed after verification. With links allowed, a "
            "link must still resolve inside the model (or a Hugging Face `blobs/` folder), "
            "and a linked folder is never skipped silently.",
        ),
        Rule(
            "MG315",
            "not-regular-file",
            _H,
            "A path in the model is not a regular file.",
            "A FIFO, socket or device node, or a folder where a signed file should be, cannot "
            "be verified and can block or change what a loader reads.",
        ),
        Rule(
            "MG316",
            "empty-model",
            _H,
            "The model or its manifest has no files.",
            "An empty manifest verifies nothing; the OMS specification requires verifiers to "
            "reject it.",
        ),
        Rule(
            "MG317",
            "file-changed-after-verify",
            _H,
            "A verified file changed between verification and use.",
            "Its device, inode, size or modification time differ from what verification "
            "recorded, so the bytes about to be loaded may not be the ones verified. Verify "
            "again.",
        ),
        Rule(
            "MG318",
            "file-ignored",
            _I,
            "A file not covered by the signature was ignored by policy.",
            "Names such as the signature file, `.gitattributes` or `.cache/huggingface/**` (and "
            "patterns given to the verification) are not signed and are ignored by name. They "
            "are listed so that nothing is skipped silently.",
        ),
        Rule(
            "MG401",
            "archive-path-escape",
            _H,
            "An archive member's name would be written outside the extraction folder.",
            "The member name is absolute, carries a drive letter, contains a NUL byte, or "
            "climbs out with `..` after normalisation (Zip Slip; Keras get_file "
            "CVE-2025-12638). Loaders that extract archives (Keras, get_file, tar-based "
            "checkpoints) would overwrite files elsewhere on the host. Do not extract the file.",
        ),
        Rule(
            "MG402",
            "archive-link-member",
            _H,
            "An archive holds a link that points outside it, or a device or FIFO member.",
            "Extracting a link member whose target is absolute or climbs out of the archive "
            "makes a later member, or the loader itself, read or write wherever it points "
            "(tar hard-link traversal, keras#23055); device and FIFO members create special "
            "files. Links that stay inside the archive are not reported. The target is in "
            "the evidence.",
        ),
        Rule(
            "MG403",
            "duplicate-key",
            _H,
            "A name is defined twice in a header, config or archive; readers disagree which wins.",
            "JSON configs and safetensors headers with a repeated key, GGUF metadata or tensor "
            "names given twice, or a tar member stored twice: one parser keeps the first copy, "
            "another the last (ToB TOB-SFTN-7). A scanner can be shown one copy while the "
            "loader uses the other. Benign writers never produce duplicates.",
        ),
        Rule(
            "MG404",
            "decompression-bomb",
            _H,
            "A member or wrapper expands far beyond its stored size.",
            "The compression ratio or the declared size exceeds the scanner's limits "
            "(max_ratio, max_member_bytes): a decompression bomb that exhausts memory or disk "
            "in loaders that inflate it (keras#23010). The rest of it was not analysed.",
        ),
        Rule(
            "MG410",
            "safetensors-invalid",
            _H,
            "The safetensors header breaks the format's rules.",
            "Header length beyond the cap or the file, a header not starting with `{`, invalid "
            "JSON, an unknown dtype, bad shapes, offsets that overlap, leave holes or run past "
            "the data, trailing bytes, or non-string metadata. The reference loader refuses "
            "such files, but other readers may not, and unindexed bytes are where polyglot "
            "payloads hide. The problem is named in the evidence.",
        ),
        Rule(
            "MG411",
            "safetensors-metadata",
            _L,
            "The safetensors header carries unusual keys, names or metadata content.",
            "Extra keys in tensor entries, tensor names with control characters or path "
            "separators, or metadata values holding URLs, code, templates or very long text. "
            "None of it runs on load, but it is not what converters write and may target "
            "tools that act on metadata.",
        ),
        Rule(
            "MG413",
            "safetensors-metadata-code",
            _M,
            "safetensors metadata holds code or template syntax.",
            "A `__metadata__` value contains code-like text (imports, eval, shell, script "
            "tags) or Jinja/template syntax. The reference loader never runs it, but it is "
            "there for something to run: tools that render model cards, templates or "
            "metadata, or a second stage that reads it. Converters never write this.",
        ),
        Rule(
            "MG412",
            "shard-index-mismatch",
            _H,
            "A sharded checkpoint's index and its shards disagree.",
            "The `*.safetensors.index.json` weight map names a tensor its shard does not hold, "
            "a shard holds tensors the index does not list (hidden capacity), a tensor is "
            "defined in two shards (which copy a loader uses depends on the loader), or a "
            "shard name has path components.",
        ),
        Rule(
            "MG420",
            "gguf-invalid",
            _H,
            "The GGUF header, metadata or tensor table breaks the format's rules.",
            "Counts or lengths beyond the file, unknown value or tensor types, too many "
            "dimensions, element counts that overflow, a bad alignment, misaligned, "
            "overlapping or out-of-range tensor offsets. Native GGUF readers trusted such "
            "fields and had heap overflows (CVE-2026-33298, llama.cpp #19856). The problem is "
            "named in the evidence.",
        ),
        Rule(
            "MG421",
            "template-injection",
            _C,
            "A chat template reaches Python internals.",
            "The Jinja template (GGUF `tokenizer.chat_template`, `tokenizer_config.json`, "
            "`chat_template.jinja`) uses dunder attributes, escape-prone globals or obfuscated "
            "attribute access. Rendered by a Python jinja2 environment without a sandbox it "
            "runs code when the model is loaded or chatted with (CVE-2024-34359, "
            "CVE-2026-5760). The template was parsed, never rendered.",
        ),
        Rule(
            "MG422",
            "template-suspicious",
            _L,
            "A chat template does something templates rarely need.",
            "The template contains URLs, branches on the content of messages, or injects text "
            "the user did not write: the signs of a poisoned template that plants hidden "
            "instructions or waits for a trigger. It does not run code; review the template.",
        ),
        Rule(
            "MG430",
            "onnx-external-path-escape",
            _C,
            "ONNX external data points outside the model folder.",
            "A tensor's external-data `location` is absolute, has a drive letter, a URL "
            "scheme or a NUL byte, climbs out with `..`, or resolves through a symbolic or hard "
            "link to a file outside the model folder. Loading the model reads that host file "
            "into the weights (CVE-2022-25882, CVE-2024-27318, CVE-2026-27489, "
            "CVE-2026-34446, CVE-2026-34447).",
        ),
        Rule(
            "MG431",
            "onnx-external-data-invalid",
            _H,
            "ONNX external-data entries are malformed.",
            "An external-data entry has keys other than location, offset, length and checksum "
            "(older onnx applied them with setattr, CVE-2026-34445), an offset or length that "
            "runs past the data file, or names a file that is missing or not a regular file.",
        ),
        Rule(
            "MG432",
            "onnx-custom-domain",
            _M,
            "The ONNX graph uses operators from a non-standard domain.",
            "Custom operator domains need a native library registered by the host (or, for "
            "`ai.onnx.contrib`, Python code through onnxruntime-extensions): code that is not "
            "in the file and cannot be judged, like an unknown pickle global. Once the "
            "library is reviewed, lower the rule's severity in the policy file.",
        ),
        Rule(
            "MG440",
            "keras-lambda",
            _C,
            "A Keras model config holds a Lambda layer with serialised code.",
            "Lambda layers store Python bytecode (base64 marshal) that runs when the model is "
            "loaded with safe_mode off, or through safe_mode bypasses (CVE-2024-3660, "
            "CVE-2025-9906, CVE-2025-9905). Printable strings of the code are in the evidence; "
            "the code was never unmarshalled.",
        ),
        Rule(
            "MG441",
            "keras-foreign-module",
            _H,
            "A Keras model config references a module outside Keras.",
            "Keras deserialisation imports the `module` and `registered_name` a config names; "
            "a reference outside Keras' own packages is how arbitrary functions were called at "
            "load time (CVE-2025-1550). Custom layers legitimately do this; allow them by name "
            "in the policy once reviewed.",
        ),
        Rule(
            "MG442",
            "keras-unsafe-reference",
            _C,
            "A Keras model config uses an API or layer that reaches the host.",
            "The config references a non-modelling Keras API (get_file, "
            "enable_unsafe_deserialization, load_model, ...), a layer that loads other "
            "artifacts (TFSMLayer, TorchModuleWrapper), a lookup vocabulary given as a file "
            "path, or a layer name that is a path: the safe_mode bypasses of CVE-2025-8747, "
            "CVE-2025-9906, CVE-2025-49655, CVE-2025-12058, CVE-2026-1462 and CVE-2026-12479.",
        ),
        Rule(
            "MG443",
            "hdf5-external-reference",
            _C,
            "An HDF5 file reads data from outside itself.",
            "A dataset with external storage, an external link or a virtual dataset makes "
            "loading read a host file into the weights (CVE-2026-1669); soft links can alias "
            "one dataset as another. Found from HDF5 metadata only; no external data was read.",
        ),
        Rule(
            "MG444",
            "hdf5-shape-bomb",
            _H,
            "An HDF5 dataset declares far more data than the file stores.",
            "A dataset whose shape times item size is many times larger than the bytes "
            "stored makes the loader allocate it (CVE-2026-0897).",
        ),
        Rule(
            "MG445",
            "keras-unexpected-member",
            _L,
            "A .keras archive holds members Keras does not write.",
            "Keras saves config.json, metadata.json and model.weights.h5 (plus assets). Other "
            "members were scanned on their own; they are not used by Keras but may be by "
            "other tools.",
        ),
        Rule(
            "MG450",
            "torchscript-host-access",
            _C,
            "TorchScript code reads or writes host files or reaches the OS.",
            "The archive's `code/` calls operators such as torch.from_file or torch.save that "
            "read an arbitrary host file into a tensor or write one when the module runs; "
            "torch.jit.load trusts it. The call and its line are in the evidence.",
        ),
        Rule(
            "MG451",
            "torchscript-custom-op",
            _M,
            "TorchScript code calls operators from a non-standard namespace.",
            "`torch.ops.<namespace>` operators outside torch's and torchvision's own need a "
            "native library loaded by the host: code that is not in the file and cannot be "
            "judged, like an unknown pickle global. Once the library is reviewed, lower the "
            "rule's severity in the policy file.",
        ),
        Rule(
            "MG452",
            "storage-size-mismatch",
            _H,
            "A PyTorch storage's declared size does not match its stored data.",
            "The pickle declares a storage of N elements but `data/<key>` holds a different "
            "number of bytes, or the storage is missing. torch before 2.10 trusted the "
            "declared size (heap corruption, CVE-2026-24747).",
        ),
        Rule(
            "MG460",
            "tf-dangerous-op",
            _C,
            "A TensorFlow graph runs Python callbacks or reads or writes files.",
            "Ops such as PyFunc, EagerPyFunc, ReadFile, WriteFile, MatchingFiles or "
            "ImmutableConst outside the standard save/restore functions run Python code or "
            "touch host files when the graph runs (TensorFlow SECURITY.md: models are "
            "programs). The op and its function are in the evidence.",
        ),
        Rule(
            "MG461",
            "tf-risky-op",
            _M,
            "A TensorFlow graph reads data through file readers or prints to a stream.",
            "Dataset and table readers (TFRecordDataset, TextLineDataset, "
            "InitializeTableFromTextFile, ...) read host files named in the graph; PrintV2 "
            "can write to files. Legitimate in input pipelines, unusual in a served model.",
        ),
        Rule(
            "MG470",
            "numpy-size-mismatch",
            _M,
            "A NumPy array declares a different size than the bytes stored.",
            "shape times item size disagrees with the data that follows the header: more "
            "declared than stored makes loaders allocate what is not there (keras#23016); "
            "more stored than declared leaves bytes that another reader may interpret.",
        ),
        Rule(
            "MG480",
            "remote-code",
            _L,
            "The model folder configures custom code that loaders import.",
            "`auto_map`, `custom_pipelines` or custom module entries make transformers (with "
            "trust_remote_code) or sentence-transformers import Python files shipped with the "
            "model. The files are named in the evidence; review them before trusting the "
            "model, and pin a revision.",
        ),
        Rule(
            "MG481",
            "remote-code-cross-repo",
            _C,
            "Custom code is taken from another repository.",
            "An `auto_map` entry of the form `owner/repo--module.Class` makes transformers "
            "fetch code from a different repository whose revision is not pinned by this "
            "model's revision: whoever controls that repository runs code in your process.",
        ),
        Rule(
            "MG482",
            "remote-code-missing",
            _H,
            "Custom code named by the config is not in the model folder.",
            "The config names a module that is not shipped here, so it would be fetched from "
            "elsewhere at load time and could not be reviewed or scanned.",
        ),
        Rule(
            "MG483",
            "executable-file",
            _M,
            "A native executable or script is shipped beside model weights.",
            "ELF, PE or Mach-O binaries and scripts with an interpreter line have no role in a "
            "model folder; they run if anything invokes them.",
        ),
        Rule(
            "MG484",
            "pickle-beside-safetensors",
            _L,
            "Pickle weights are shipped next to safetensors weights.",
            "Loaders choose between them by their own rules (and fall back to pickle when "
            "safetensors are filtered out), and nothing guarantees that both hold the same "
            "weights. Prefer the safetensors files and delete the pickle copies.",
        ),
        Rule(
            "MG485",
            "remote-code-dangerous",
            _H,
            "Custom code the config makes loaders import runs processes, eval or network calls.",
            "A Python file named by `auto_map` (or imported by one) calls process, "
            "dynamic-code, network or file-system functions. It runs with trust_remote_code. "
            "The calls and lines are in the evidence; the code was parsed, never imported.",
        ),
        Rule(
            "MG501",
            "tensor-nonfinite",
            _L,
            "A tensor holds NaN or infinite values.",
            "Trained parameters are finite; NaN or Inf values corrupt every output they reach "
            "and are a cheap way to sabotage a model. Attention-mask buffers may hold -Inf by "
            "design. The evidence has the counts, the tensor and where they were measured "
            "(source: the safetensors format notes; weight-integrity checks).",
        ),
        Rule(
            "MG502",
            "tensor-degenerate",
            _I,
            "A tensor is all zeros or constant, or holds many subnormal values.",
            "A constant or zeroed weight matrix disables the layer it belongs to; pruned "
            "models and zero-initialised adapters are legitimate exceptions. Reported as "
            "information with the statistic.",
        ),
        Rule(
            "MG503",
            "precision-inconsistent",
            _L,
            "A tensor's low-order bits break the precision pattern of the model.",
            "Weights converted from bfloat16 to float32 have all-zero low 16 bits. A region or "
            "tensor whose low bits are set while the rest of the model's are zero was written "
            "after conversion: a hidden payload or an edit. The evidence names the share of "
            "zero low halves in the region and in the model (source: EvilModel, StegoNet).",
        ),
        Rule(
            "MG504",
            "bitplane-anomaly",
            _L,
            "The low-order bits of a tensor region are not distributed like trained weights.",
            "In trained float weights the lowest byte is close to uniform and least-"
            "significant bits are set half the time. A window whose low-byte histogram fails "
            "a chi-square test against uniform, or whose bit counts deviate strongly, carries "
            "structured data in the low bits (steganography: EvilModel, MaleficNet; arXiv "
            "2310.01969). Encrypted payloads in genuine float32 cannot be seen this way; this "
            "is evidence, not proof. Statistic, threshold and window are in the evidence.",
        ),
        Rule(
            "MG505",
            "hidden-file-in-weights",
            _M,
            "A file (executable, archive, script) is embedded in the low-order bits of a tensor.",
            "The byte stream built from the low bytes of the weights contains a known file "
            "signature whose structure validates (ELF or PE headers, a ZIP directory, a gzip "
            "header, a script line). Trained weights do not contain these by chance; a loader "
            "does not run it, but a second stage can extract it (EvilModel).",
        ),
        Rule(
            "MG506",
            "indicators-not-run",
            _I,
            "The tensor indicators could not read some tensors.",
            "A tensor was stored in a way the indicator pass does not read (compressed member, "
            "quantised type, non-contiguous storage) or a size limit was reached. The "
            "indicators for it are absent, nothing else is affected.",
        ),
        Rule(
            "MG510",
            "targeted-edit",
            _M,
            "Against the trusted base, few tensors changed: low-rank, or all in one layer.",
            "A surgical edit of a known model changes one or a few weight matrices by a rank-1 "
            "or low-rank delta (ROME, PoisonGPT) or retrains a single layer while everything "
            "else stays identical (BadSeek); a fine-tune changes most tensors densely. The "
            "evidence has the tensors, their relative change and the share of the delta's "
            "energy in its top singular values (randomised SVD), or the layer.",
        ),
        Rule(
            "MG511",
            "weights-changed",
            _I,
            "Tensors differ from the trusted base.",
            "A summary of the comparison with the base model: how many tensors changed and by "
            "how much. A dense update of many tensors reads as fine-tuning.",
        ),
        Rule(
            "MG512",
            "embedding-rows-edited",
            _L,
            "A few rows of an embedding or output matrix differ from the base.",
            "Editing the rows of chosen tokens plants a trigger or changes what a token means "
            "while the rest of the model is untouched. The evidence lists the rows.",
        ),
        Rule(
            "MG513",
            "auxiliary-file-changed",
            _L,
            "A tokenizer, chat template, config or code file differs from the base.",
            "Tokenizers, chat templates, configs and the Python files `trust_remote_code` "
            "imports change what a model does as much as its weights (a template can add "
            "hidden instructions). The evidence has the file and the keys that differ.",
        ),
        Rule(
            "MG514",
            "tensor-set-changed",
            _L,
            "Tensors were added, removed or reshaped compared with the base.",
            "A model that claims to be derived from the base but has a different set of "
            "tensors or shapes is a different architecture or carries extra parameters.",
        ),
        Rule(
            "MG520",
            "config-mismatch",
            _L,
            "The weights do not match the architecture the config declares.",
            "Tensor shapes or counts disagree with config.json (hidden size, layers, "
            "vocabulary, tied embeddings). Loaders then fail, silently ignore weights, or "
            "initialise missing ones randomly. The evidence has the tensor and both values.",
        ),
        Rule(
            "MG521",
            "duplicate-tensors",
            _I,
            "Tensors are byte-identical without being declared tied.",
            "Identical tensors that the config does not tie are unusual: a copy-paste edit or "
            "a padding trick. Tied embeddings are not reported.",
        ),
        Rule(
            "MG530",
            "unsigned-model",
            _I,
            "The model folder carries no signature.",
            "Nothing binds these files to a publisher. Sign models you publish (`modelguard "
            "sign`) and verify before loading (`modelguard verify`).",
        ),
        Rule(
            "MG531",
            "signature-coverage",
            _L,
            "A signature is present but does not cover every file a loader reads.",
            "The signature's manifest misses configs, tokenizer files, templates or code that "
            "loaders read; those files could be replaced without breaking the signature. The "
            "files are in the evidence. (The signature itself is checked by `verify`.)",
        ),
        Rule(
            "MG532",
            "revision-unpinned",
            _I,
            "The Hugging Face snapshot is not pinned to a reviewed revision.",
            "The cached snapshot is reached from a branch (it moves) or from a pull-request ref "
            "(`refs/pr/*`: unreviewed, for example conversion-bot PRs). Pin the commit that "
            "was reviewed.",
        ),
        Rule(
            "MG533",
            "pickle-only-weights",
            _I,
            "Weights are shipped only as pickle, with no safetensors equivalent.",
            "Loading them runs the pickle machinery; a safetensors copy cannot execute code. "
            "Prefer a safetensors revision.",
        ),
        Rule(
            "MG601",
            "hf-snapshot-incomplete",
            None,
            "A cached Hugging Face snapshot lacks a file its commit contains.",
            "The tree listing huggingface_hub cached for this commit names a file that is not "
            "in the local snapshot (an interrupted or filtered download). What is missing was "
            "not scanned, so the scan is incomplete (exit 2), never safe. Complete the "
            "download (`hf download REPO --revision COMMIT`) and scan again.",
        ),
        Rule(
            "MG602",
            "hf-download-incomplete",
            None,
            "The Hugging Face cache holds an interrupted download (a `.incomplete` blob).",
            "A `blobs/*.incomplete` file is a download that did not finish; a loader may "
            "resume or retry it later, and its final content is unknown. The scan of this "
            "repository is incomplete. Finish the download or delete the partial blob "
            "(`hf cache prune`/`hf cache rm`), then scan again.",
        ),
        Rule(
            "MG603",
            "hf-cache-corrupted",
            None,
            "huggingface_hub reports a corrupted cache entry, or its metadata or listing cannot "
            "be read safely.",
            "`scan_cache_dir` could not list a repository of the cache (a broken symlink, a "
            "ref naming a missing snapshot, a stray file). Its snapshot files are still "
            "scanned as plain folders where possible, but the audit is incomplete. Repair or "
            "re-download the repository.",
        ),
        Rule(
            "MG604",
            "hf-blob-digest-mismatch",
            _H,
            "A Hugging Face cache blob does not match its digest.",
            "LFS blobs in the cache are named by the SHA-256 of their content. This blob's "
            "content hashes to a different value: it was modified after download (tampering "
            "or corruption), so it is not what the Hub served for that commit. The expected "
            "and actual digests are in the evidence. Delete the blob and download it again.",
        ),
    )
}


def get_rule(rule_id: str) -> Rule:
    """Return the rule with id `rule_id` (case-insensitive).

    Raises:
        KeyError: no such rule.
    """
    return RULES[rule_id.upper()]
