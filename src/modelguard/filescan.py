"""The analysis of one file: content sniffing and dispatch, pickles, simple formats.

`FileScan` walks a file's content recursively: what each part is comes from its bytes;
containers are walked by `modelguard.containers`; pickles are run through the symbolic
machine and judged by the policy; anything that could not be fully analysed is recorded as
incomplete rather than safe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from modelguard.containers import walk_tar, walk_wrapper, walk_zip
from modelguard.errors import LimitExceeded
from modelguard.formats.blob import Blob, BytesBlob
from modelguard.formats.numpy import NPY_MAGIC
from modelguard.formats.sniff import (
    GGUF_MAGIC,
    HDF5_MAGIC,
    LFS_PREFIX,
    PickleSignature,
    looks_like_text,
    pickle_signature,
    safetensors_header_length,
)
from modelguard.picklevm.values import GlobalRef, PersRef, PickleResult
from modelguard.picklevm.vm import ExtRegistry, run_pickle
from modelguard.policy import Policy
from modelguard.policy.evaluate import Collected, evaluate_pickle, make_finding
from modelguard.policy.names import Class
from modelguard.results import Incomplete, Location

__all__ = ["FileScan"]

# torch.save's legacy (non-zip) format starts with this magic number pickle, then the
# protocol version, sys_info, the object and the storage keys: five pickles, then raw data.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES = 5
_HIDDEN_SPAN = 64 * 1024
_MIN_TEXT_PROTOBUF = 8
_JSON_SNIFF = 1024 * 1024  # leading whitespace json.loads skips, in a UTF-16/32 document
_HIDDEN_BUDGET = 2_000_000


class FileScan:
    """The analysis of one top-level file: a recursive walk over its content."""

    def __init__(self, display: str, policy: Policy, path: str | None = None) -> None:
        self.policy = policy
        # The file on disk, when the scan started from one: analysers that follow what a
        # loader does next to the file (ONNX external data, sharded indexes, auto_map code)
        # look beside it. None for content with no place on disk.
        self.path = path
        # Persistent ids (torch storages) of every pickle analysed, with the pickle's location.
        self.persids: list[tuple[Location, PersRef]] = []
        # Inside an archive: reads a member by its path relative to another member (the
        # code files a zipped repository's config names); set by the archive walk.
        self.member_reader: Callable[[Location, str], bytes | None] | None = None
        self.limits = policy.limits
        self.coll = Collected()
        self.formats: list[str] = []
        self.registry: ExtRegistry = {}
        self.total = 0
        self.opcodes = 0
        self.depth = 0
        self.root = Location(display)

    # -- bookkeeping -------------------------------------------------------------------------
    def seen(self, fmt: str) -> None:
        if fmt not in self.formats:
            self.formats.append(fmt)

    def incomplete(self, rule_id: str, reason: str, loc: Location) -> None:
        self.coll.incomplete.append(Incomplete(rule_id, reason, loc))

    def finding(self, rule_id: str, message: str, loc: Location, **evidence: str) -> None:
        self.coll.findings.append(make_finding(self.policy, rule_id, message, loc, evidence))

    def charge(self, nbytes: int, loc: Location) -> bool:
        """Count decompressed bytes against max_total_bytes; False when over."""
        self.total += nbytes
        if self.total > self.limits.max_total_bytes:
            self.incomplete(
                "MG003",
                f"max_total_bytes reached ({self.limits.max_total_bytes} decompressed bytes)",
                loc,
            )
            return False
        return True

    # -- dispatch ----------------------------------------------------------------------------
    def analyse(self, blob: Blob, loc: Location, depth: int, *, raw: bool = False) -> str:
        """Recognise `blob` by content and analyse it; return the format name."""
        if depth > self.limits.max_depth:
            self.incomplete("MG003", f"max_depth reached ({self.limits.max_depth})", loc)
            return "limit"
        self.depth = depth
        head = blob.read(0, 512)
        if raw:
            # Tensor storage is read as raw bytes by the loader and never unpickled; random
            # floats often start like a pickle. Only a complete stream that imports something
            # dangerous is worth reporting (a payload parked where a second loader may look).
            if pickle_signature(head) is not PickleSignature.NONE:
                self.hidden_in_raw(blob, loc)
            return "raw"
        sig = pickle_signature(head)
        if head.startswith(LFS_PREFIX):
            self.incomplete("MG005", "Git LFS pointer: the model content is not present", loc)
            return self.mark("git-lfs-pointer")
        # A zip is found by its end record wherever it starts, before any format that is
        # recognised by its first bytes: anything in front of it is analysed as a prefix, so
        # a safetensors, .npy or pickle with a zip appended is caught as a polyglot.
        fmt = walk_zip(self, blob, loc, depth)
        if fmt:
            return fmt
        if head.startswith(NPY_MAGIC):
            from modelguard.analysers.numpy import analyse_numpy

            return self.also_pickle(analyse_numpy(self, blob, loc, depth), blob, head, loc)
        if head.startswith(GGUF_MAGIC):
            from modelguard.analysers.gguf import analyse_gguf

            return self.also_pickle(analyse_gguf(self, blob, loc, depth), blob, head, loc)
        if head.startswith(HDF5_MAGIC):
            from modelguard.analysers.hdf5 import analyse_hdf5

            return self.also_pickle(analyse_hdf5(self, blob, loc, depth), blob, head, loc)
        if safetensors_header_length(blob) is not None:
            from modelguard.analysers.safetensors import analyse_safetensors

            fmt = analyse_safetensors(self, blob, loc, depth)
            return self.also_pickle(fmt, blob, head, loc)
        fmt = walk_tar(self, blob, head, loc, depth)
        if fmt:
            return fmt
        fmt = walk_wrapper(self, blob, head, loc, depth)
        if fmt:
            return fmt
        if sig is PickleSignature.STRONG:
            return self.mark(self.pickles(blob, loc, strong=True) or "pickle")
        if sig is PickleSignature.WEAK:
            kind = self.pickles(blob, loc, strong=False)
            if kind:
                return self.mark(kind)
        from modelguard.analysers.protobuf import analyse_protobuf, sniff_protobuf

        # A protobuf model (ONNX, TF GraphDef) can be valid UTF-8 without a NUL in its first
        # 512 bytes: sniff it before taking the content for text.
        text = looks_like_text(head)
        # Tiny text (a torch zip's `version`, `byteorder`) is not worth a protobuf sniff.
        if not text or (blob.size >= _MIN_TEXT_PROTOBUF and sniff_protobuf(head, blob.size)):
            fmt = analyse_protobuf(self, blob, head, loc, depth)
            if fmt:
                return self.mark(fmt)
        from modelguard.analysers.textfiles import analyse_text, looks_like_json

        # JSON that is not plain UTF-8 (a BOM, UTF-16/32, lone surrogates) is still read by
        # json.loads(bytes), which is how Keras reads config.json.
        if text or looks_like_json(blob.read(0, _JSON_SNIFF)):
            return self.mark(analyse_text(self, blob, loc, depth))
        self.finding("MG210", "content is none of the formats modelguard knows", loc)
        return self.mark("unknown")

    def mark(self, fmt: str) -> str:
        self.seen(fmt)
        return fmt

    def unsupported(self, fmt: str, what: str, loc: Location) -> str:
        self.incomplete(
            "MG004",
            f"{what} content is not analysed by this version of modelguard",
            loc,
        )
        return self.mark(fmt)

    def also_pickle(self, fmt: str, blob: Blob, head: bytes, loc: Location) -> str:
        """Report a file that is `fmt` and also starts with a pickle that would do something.

        `pickle.load` on the file runs that pickle whatever the format's own loader sees
        (safetensors whose length field decodes as opcodes, modelaudit#1612).
        """
        if pickle_signature(head) is PickleSignature.NONE:
            return self.mark(fmt)
        res = self.run(blob, 0, registry={})
        if res.complete and res.effective:
            self.finding(
                "MG202",
                f"the file is both {fmt} and a pickle that imports or calls something",
                loc,
                formats=f"{fmt}+pickle",
            )
            self.judge(res, blob, loc.inner("<as-pickle>"))
        return self.mark(fmt)

    # -- pickles -----------------------------------------------------------------------------
    def run(self, blob: Blob, pos: int, registry: ExtRegistry | None = None) -> PickleResult:
        """Run one pickle symbolically within what is left of the file's opcode budget.

        max_opcodes bounds the whole file, not each pickle: a file of many stacked or nested
        pickles cannot multiply the work.
        """
        remaining = self.limits.max_opcodes - self.opcodes
        limits = (
            self.limits
            if remaining >= self.limits.max_opcodes
            else (replace(self.limits, max_opcodes=max(remaining, 0)))
        )
        res = run_pickle(
            blob, pos, limits, self.registry if registry is None else registry, depth=self.depth
        )
        self.opcodes += res.opcodes
        return res

    def pickles(self, blob: Blob, loc: Location, *, strong: bool) -> str | None:
        """Analyse the pickle(s) at the start of `blob`; None if it is not a pickle."""
        first = self.run(blob, 0)
        limited = isinstance(first.error, LimitExceeded)
        if not strong and not limited and not self.accept_weak(first, blob.size):
            return None
        results = [first]
        legacy = first.complete and first.value == _TORCH_LEGACY_MAGIC
        budget = _TORCH_LEGACY_PICKLES if legacy else self.limits.max_pickles_per_stream
        last = first
        while last.complete and last.end < blob.size:
            sig = pickle_signature(blob.read(last.end, 2))
            if sig is PickleSignature.NONE:
                break
            if len(results) >= budget:
                if not legacy:
                    self.incomplete(
                        "MG003",
                        f"max_pickles_per_stream reached ({budget} stacked pickles)",
                        loc.at(last.end),
                    )
                break
            nxt = self.run(blob, last.end)
            # A limit is ours, not the data's: the stream is reported incomplete, not ignored.
            hit_limit = isinstance(nxt.error, LimitExceeded)
            if not (nxt.complete or hit_limit or self.accept_weak(nxt, blob.size)):
                break
            results.append(nxt)
            last = nxt
        for res in results:
            self.judge(res, blob, loc)
            self.persids.extend((loc, ref) for ref in res.persids)
        if len(results) > 1 and not legacy:
            self.finding(
                "MG112",
                f"{len(results)} pickles one after another; all were analysed",
                loc,
                count=str(len(results)),
            )
        if last.complete and last.end < blob.size and not legacy:
            self.finding(
                "MG111",
                f"{blob.size - last.end} bytes follow the last pickle",
                loc.at(last.end),
                bytes=str(blob.size - last.end),
            )
        if legacy:
            self.seen("legacy-torch")
            if len(results) == _TORCH_LEGACY_PICKLES and last.complete:
                from modelguard.analysers.torchzip import check_legacy_storages

                check_legacy_storages(self, blob, last.value, last.end, loc)
            return "legacy-torch"
        return "pickle"

    def judge(self, res: PickleResult, blob: Blob, loc: Location) -> None:
        """Evaluate one pickle's analysis, and re-read any frame overrun it contains."""
        self.coll.extend(evaluate_pickle(res, loc, self.policy, self.nested))
        for anomaly in res.anomalies:
            if anomaly.span is not None:
                self.hidden(blob, anomaly.span, loc)

    def hidden(self, blob: Blob, span: tuple[int, int], loc: Location) -> None:
        """Read the bytes behind a frame overrun as opcodes, as older C unpicklers did.

        CPython's C unpickler before gh-154848 could run what follows a frame's end even
        though a linear reading takes it for an argument's data; every offset of that span is
        tried as the start of a stream, and streams that would do something are reported.
        """
        start, end = span
        window = min(end - start, _HIDDEN_SPAN)
        region = BytesBlob(blob.read(start, window + _HIDDEN_SPAN))
        trial = replace(self.limits, max_opcodes=100_000)
        budget = _HIDDEN_BUDGET  # opcodes over all trial starts: a span of NONEs is quadratic
        offset = 0
        while offset < window:
            res = run_pickle(region, offset, trial, dict(self.registry), chunk=256)
            budget -= max(res.opcodes, 1)
            if budget < 0:
                self.incomplete(
                    "MG003",
                    f"max_opcodes reached re-reading a frame overrun ({_HIDDEN_BUDGET} opcodes "
                    "over all starting offsets)",
                    loc.at(start + offset),
                )
                return
            if res.effective:
                where = loc.inner(f"<after-frame@{start + offset}>")
                self.coll.extend(evaluate_pickle(res, where, self.policy, self.nested))
                offset = max(offset + 1, res.end)
            else:
                offset += 1

    def hidden_in_raw(self, blob: Blob, loc: Location) -> None:
        """Report a complete, dangerous pickle parked in raw tensor data; ignore the rest."""
        res = self.run(blob, 0, registry={})
        if res.complete and self.dangerous_import(res):
            self.judge(res, blob, loc)

    def dangerous_import(self, res: PickleResult) -> bool:
        """Return True if the stream imports a denied or load-time-computed name."""
        return any(
            ref.dynamic or self.policy.classify(ref.module, ref.name, ref.proto).klass is Class.DENY
            for ref in res.imports
        )

    def accept_weak(self, res: PickleResult, size: int) -> bool:
        """Is a weak-signature (protocol 0/1) stream a pickle?

        Yes if it imports something dangerous, or calls or modifies something it imported
        (what a loader would act on), or if it is a complete pickle that uses the whole blob
        or imports something. Random bytes and text rarely get that far; a few bytes that
        happen to form a complete literal pickle followed by more data (raw tensor data
        does) do not count, and neither do an EXT code or a call of a literal alone.
        """
        if res.nested or self.dangerous_import(res):
            return True
        if any(isinstance(c.func, GlobalRef) for c in res.calls):
            return True
        if any(isinstance(m.target, GlobalRef) for m in res.mutations):
            return True
        return res.complete and (res.end >= size or bool(res.imports))

    def nested(self, data: Blob, loc: Location) -> Collected:
        """Scan bytes a loader call inside a pickle would deserialise."""
        saved, depth = self.coll, self.depth
        self.coll = Collected()
        try:
            self.analyse(data, loc, depth + 1)
            return self.coll
        finally:
            self.coll, self.depth = saved, depth
