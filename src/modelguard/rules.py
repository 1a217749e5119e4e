"""The catalogue of rule ids: stable ids, default severities and help text.

Ids are grouped by area: MG0xx the scan itself could not finish (these make a result
incomplete rather than carrying a severity), MG1xx pickle semantics, MG2xx containers and file
structure. `modelguard explain RULE` prints `Rule.help`; SARIF carries the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelguard.results import Severity

__all__ = ["RULES", "Rule", "get_rule"]


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
    )
}


def get_rule(rule_id: str) -> Rule:
    """Return the rule with id `rule_id` (case-insensitive).

    Raises:
        KeyError: no such rule.
    """
    return RULES[rule_id.upper()]
