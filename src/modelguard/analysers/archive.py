"""Archive hygiene: member names that escape, link members, duplicates and decompression bombs.

Loaders that extract archives (Keras ``get_file`` and ``.keras`` assets, tar-based
checkpoints, hand-written ``extractall`` calls) write each member where its name says. A name
that is absolute, carries a drive letter or climbs out with ``..`` writes outside the target
folder (Zip Slip; Keras CVE-2025-12638); a symbolic or hard link member redirects later
members or the loader itself (tar hard-link traversal, keras#23055). These checks look at the
member table only (names, types, link targets, declared sizes): nothing is extracted.

Called by `modelguard.containers` before the members are analysed; decompression limits
reached while opening members are reported through `report_bomb`.
"""

from __future__ import annotations

import posixpath
import re
import stat
from typing import TYPE_CHECKING

from modelguard.errors import FormatError, LimitExceeded

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.formats.tarread import TarView
    from modelguard.formats.zipread import ZipMember, ZipView
    from modelguard.results import Location

__all__ = [
    "ARCHIVE_BOMB_FLOOR",
    "BOMB_FLOOR",
    "BOMB_LIMITS",
    "budget_spent",
    "check_archive_total",
    "check_expansion",
    "check_tar_members",
    "check_zip_members",
    "declared_bomb",
    "escape_reason",
    "normalise_member",
    "report_bomb",
]

#: Findings of one rule reported per archive before the rest are summed up in one finding.
MAX_FINDINGS_PER_RULE = 20
#: Limits whose breach means the content expands beyond what the scanner holds: a bomb.
BOMB_LIMITS = frozenset({"max_ratio", "max_member_bytes"})
#: A member (or wrapper content) expanding more than ``max_ratio`` times is a decompression
#: bomb (MG404) once it expands beyond this many bytes, even when it stays within the
#: decoder's caps. The decoder's own cap (``max_ratio`` x `RATIO_FLOOR`, 200 MiB at the
#: defaults) lets a 1000x member through; below this floor a high ratio is ordinary (zero
#: initialised arrays in ``np.savez_compressed``, padded tensors).
BOMB_FLOOR = 64 * 1024 * 1024
#: An archive whose members expand in total (nested archives' decompressed bytes included)
#: beyond this many bytes at an overall ratio above ``max_ratio`` is a bomb (MG404) even when
#: no single member is: many mid-sized members or archives nested in archives.
ARCHIVE_BOMB_FLOOR = 256 * 1024 * 1024
#: MG404 findings reported per top-level file; a layered bomb would otherwise list hundreds.
MAX_BOMB_FINDINGS = 20
_TOTAL_REACHED = "max_total_bytes reached"
# tar type flags of members that are not data (POSIX ustar): extracting them as root creates
# device nodes or FIFOs (a FIFO blocks a loader that opens it); no model tar holds one.
_SPECIAL_TAR_TYPES = {b"3": "device", b"4": "device", b"6": "fifo"}
_TYPEFLAG = 156  # offset of the type flag in a tar header block
_UNIX = 3  # "version made by" high byte for Unix (APPNOTE 4.4.2.2)
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_LINK_TARGET = 4096  # a zip symlink's target is its content; longer is not a path
_SHOWN = 200  # characters of a member name or link target kept in messages and evidence


def _show(text: str) -> str:
    """A member name or link target made printable and short for messages and evidence."""
    shown = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."


def normalise_member(name: str) -> str | None:
    """Return the member name as an extractor would resolve it, or None if it escapes.

    Backslashes count as separators (Windows extractors treat them so); empty and ``.``
    components are dropped and ``..`` removes the previous component. None when the name is
    absolute, has a drive letter or a NUL byte, or ``..`` climbs above the extraction folder.
    """
    return None if escape_reason(name) else "/".join(_components(name))


def _components(name: str) -> list[str]:
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def escape_reason(name: str) -> str | None:
    """Return why a member name would be written outside the extraction folder, or None."""
    if ".." not in name and ":" not in name and "\x00" not in name and name[:1] not in "/\\":
        return None  # the common case, decided without splitting
    if "\x00" in name:
        return "contains a NUL byte"
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(unified):
        return "has a drive letter"
    depth = 0
    for part in unified.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return "climbs out of the extraction folder with '..'"
        else:
            depth += 1
    return None


class _Capped:
    """Counts findings per rule in one archive; past the cap they are summed up at the end."""

    def __init__(self, scan: FileScan, loc: Location) -> None:
        self.scan, self.loc = scan, loc
        self.counts: dict[str, int] = {}

    def add(self, rule: str, message: str, loc: Location, **evidence: str) -> None:
        if rule == "MG404" and _bomb_count(self.scan) >= MAX_BOMB_FINDINGS:
            return
        n = self.counts.get(rule, 0) + 1
        self.counts[rule] = n
        if n <= MAX_FINDINGS_PER_RULE:
            self.scan.finding(rule, message, loc, **evidence)

    def close(self) -> None:
        for rule, n in sorted(self.counts.items()):
            if n > MAX_FINDINGS_PER_RULE:
                more = n - MAX_FINDINGS_PER_RULE
                self.scan.finding(
                    rule,
                    f"{more} more archive members with the same problem are not listed",
                    self.loc,
                    count=str(n),
                )


def _bomb_count(scan: FileScan) -> int:
    return sum(1 for f in scan.coll.findings if f.rule_id == "MG404")


def _check_name(out: _Capped, name: str, mloc: Location, what: str = "member name") -> None:
    reason = escape_reason(name)
    if reason:
        out.add(
            "MG401",
            f"{what} {_show(name)!r} {reason}: extracting it writes outside the target folder",
            mloc,
            member=_show(name),
            reason=reason,
        )


def _zip_link(member: ZipMember) -> bool:
    # Info-ZIP stores the Unix mode in the high 16 bits of external_attr; zipfile (3.12+
    # with filter) and unzip restore S_IFLNK members as symbolic links whose target is the
    # member's content.
    mode = member.external_attr >> 16
    return member.create_system == _UNIX and stat.S_IFMT(mode) == stat.S_IFLNK


def link_escapes(name: str, target: str, *, hard: bool = False) -> bool:
    """Would a link member named `name` pointing at `target` reach outside the archive?

    A symbolic link's target is relative to the link's own folder, a hard link's to the
    archive root. Links that stay inside (a `latest.pt` next to `model.pt`, the snapshot
    links of a tarred Hugging Face cache) are how ordinary trees are archived; absolute
    targets, drive letters, NUL bytes and targets that climb out are how extraction is made
    to read or write host files (keras#23055). An unreadable target ("?") counts as escaping.
    """
    if not target or target == "?" or "\x00" in target:
        return True
    unified = target.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return True
    base = "" if hard else posixpath.dirname(name.replace("\\", "/"))
    resolved = posixpath.normpath(posixpath.join(base, unified))
    return resolved == ".." or resolved.startswith("../")


def _zip_link_target(scan: FileScan, blob: Blob | None, member: ZipMember) -> str:
    if blob is None or member.size > _MAX_LINK_TARGET:
        return "?"
    from modelguard.formats import zipread

    try:
        data = zipread.open_member(blob, member, scan.limits, ignore_encryption=True)
        return data.read(0, _MAX_LINK_TARGET).decode("utf-8", "replace")
    except FormatError:
        return "?"


def check_zip_members(
    scan: FileScan, view: ZipView, loc: Location, *, blob: Blob | None = None
) -> None:
    """Report zip members whose names escape (MG401), symbolic links (MG402) and members
    whose declared sizes make a decompression bomb (MG404).

    Duplicate names are reported by `modelguard.containers.walk_zip` (MG203), not here.
    ``blob`` (the archive) is only used to read link targets for the evidence.
    """
    out = _Capped(scan, loc)
    seen: set[tuple[str, str]] = set()
    for member in view.members:
        name = member.name
        link = _zip_link(member)
        bomb = declared_bomb(scan, member)
        if not (link or bomb or member.unicode_name is not None or escape_reason(name)):
            continue  # nothing to report: the common case, without building a location
        mloc = loc.inner(name)
        if ("MG401", name) not in seen:
            seen.add(("MG401", name))
            _check_name(out, name, mloc)
            # Info-ZIP unzip extracts under the Unicode Path extra field's name instead.
            if member.unicode_name is not None:
                _check_name(out, member.unicode_name, mloc, "Unicode Path extra field name")
        target = _zip_link_target(scan, blob, member) if link else ""
        if link and ("MG402", name) not in seen and link_escapes(name, target):
            seen.add(("MG402", name))
            out.add(
                "MG402",
                f"zip member {_show(name)!r} is a symbolic link to {_show(target)!r}",
                mloc,
                member=_show(name),
                target=_show(target),
                kind="symlink",
            )
        if bomb and ("MG404", name) not in seen:
            seen.add(("MG404", name))
            out.add(
                "MG404",
                f"zip member {_show(name)!r} declares {member.size} bytes from "
                f"{member.compressed_size} compressed bytes (above max_ratio "
                f"{scan.limits.max_ratio}, and above {BOMB_FLOOR} bytes or the decoder's cap); "
                "it is not decompressed",
                mloc,
                limit="max_ratio",
                size=str(member.size),
                compressed=str(member.compressed_size),
            )
    out.close()


def declared_bomb(scan: FileScan, member: ZipMember) -> bool:
    """Does a compressed zip member declare more output than ``max_ratio`` allows?

    True when the declared size is above the decoder's own cap
    (`modelguard.formats.compress.output_cap`: small members count as ``RATIO_FLOOR``
    compressed bytes), or above `BOMB_FLOOR` at a ratio above ``max_ratio``. Stored members
    (method 0) cannot expand. Such members are reported (MG404) and not decompressed.
    """
    if member.method == 0:
        return False
    from modelguard.formats.compress import RATIO_FLOOR

    ratio = scan.limits.max_ratio
    if member.size > ratio * max(member.compressed_size, RATIO_FLOOR):
        return True
    return member.size > BOMB_FLOOR and member.size > ratio * member.compressed_size


def check_expansion(scan: FileScan, loc: Location, what: str, size: int, compressed: int) -> bool:
    """Report MG404 when ``what`` actually decoded to ``size`` bytes from ``compressed`` bytes,
    above `BOMB_FLOOR` at a ratio above ``max_ratio``; return whether it did.

    Catches what declared sizes hide (zip sizes that lie). Not used for single-stream
    wrappers, which only the decoder's cap bounds (see `modelguard.containers.walk_wrapper`).
    """
    ratio = scan.limits.max_ratio
    if size <= BOMB_FLOOR or size <= ratio * compressed:
        return False
    if _bomb_count(scan) < MAX_BOMB_FINDINGS:
        scan.finding(
            "MG404",
            f"{what} decodes to {size} bytes from {compressed} compressed bytes (above "
            f"max_ratio {ratio} and above the {BOMB_FLOOR}-byte bomb floor)",
            loc,
            limit="max_ratio",
            size=str(size),
            compressed=str(compressed),
        )
    return True


def check_archive_total(
    scan: FileScan, loc: Location, total: int, compressed: int, *, reported: bool
) -> None:
    """Report MG404 for an archive whose members expand to ``total`` bytes in all (nested
    archives included) from ``compressed`` bytes: above `ARCHIVE_BOMB_FLOOR` at an overall
    ratio above ``max_ratio``. Nothing when a member of it was ``reported`` already."""
    ratio = scan.limits.max_ratio
    if reported or total <= ARCHIVE_BOMB_FLOOR or total <= ratio * compressed:
        return
    if _bomb_count(scan) < MAX_BOMB_FINDINGS:
        scan.finding(
            "MG404",
            f"archive members expand to {total} bytes in all from {compressed} bytes (above "
            f"max_ratio {ratio} and above the {ARCHIVE_BOMB_FLOOR}-byte archive bomb floor)",
            loc,
            limit="max_ratio",
            size=str(total),
            compressed=str(compressed),
        )


def budget_spent(scan: FileScan, loc: Location, upcoming: int = 0) -> bool:
    """Is ``max_total_bytes`` spent, or would ``upcoming`` more decoded bytes spend it?

    Checked before a member or wrapper is decompressed, so nothing more is decoded once the
    budget is gone; the MG003 incomplete is recorded once per file, not per member.
    """
    limit = scan.limits.max_total_bytes
    if scan.total + upcoming <= limit:
        return False
    if not any(i.reason.startswith(_TOTAL_REACHED) for i in scan.coll.incomplete):
        scan.incomplete("MG003", f"{_TOTAL_REACHED} ({limit} decompressed bytes)", loc)
    return True


def report_bomb(
    scan: FileScan, exc: LimitExceeded, loc: Location, what: str, compressed: int | None = None
) -> None:
    """Report MG404 for a decompression limit reached while inflating ``what``.

    Only ``max_ratio`` and ``max_member_bytes`` count (other limits are not about expansion).
    The caller still records the MG003 incomplete: what was not inflated is unknown.
    """
    if exc.limit not in BOMB_LIMITS or _bomb_count(scan) >= MAX_BOMB_FINDINGS:
        return
    value = getattr(scan.limits, exc.limit)
    evidence = {"limit": exc.limit, "value": str(value)}
    if compressed is not None:
        evidence["compressed"] = str(compressed)
    scan.finding(
        "MG404",
        f"{what} expands beyond {exc.limit} ({value}): {exc}",
        loc,
        **evidence,
    )


def _tar_special(blob: Blob | None, offset_data: int) -> str | None:
    # TarMember says "other" for devices, FIFOs and sparse files alike; the type flag is in
    # the member's own header block, the 512 bytes just before its data.
    if blob is None or offset_data < 512:
        return None
    return _SPECIAL_TAR_TYPES.get(blob.read(offset_data - 512 + _TYPEFLAG, 1))


def check_tar_members(
    scan: FileScan, view: TarView, loc: Location, *, blob: Blob | None = None
) -> None:
    """Report tar members whose names escape (MG401), link, device and FIFO members (MG402,
    evidence ``kind``) and members stored twice under the same name (MG403).

    ``blob`` (the tar) is read for the type flag of members the reader calls "other"."""
    out = _Capped(scan, loc)
    checked: set[str] = set()
    linked: set[str] = set()
    by_path: dict[str, int] = {}
    for member in view.members:
        name = member.name
        mloc = loc.inner(name)
        if name not in checked:
            checked.add(name)
            _check_name(out, name, mloc)
        if (
            member.kind in ("symlink", "hardlink")
            and name not in linked
            and link_escapes(name, member.linkname, hard=member.kind == "hardlink")
        ):
            linked.add(name)
            out.add(
                "MG402",
                f"tar member {_show(name)!r} is a {member.kind} to {_show(member.linkname)!r}",
                mloc,
                member=_show(name),
                target=_show(member.linkname),
                kind=member.kind,
            )
        special = _tar_special(blob, member.offset_data) if member.kind == "other" else None
        if special and name not in linked:
            linked.add(name)
            out.add(
                "MG402",
                f"tar member {_show(name)!r} is a {special} node: extracting it creates a "
                "special file, which no model archive holds",
                mloc,
                member=_show(name),
                kind=special,
            )
        if member.kind != "dir":
            # "a", "./a" and "b/../a" are extracted to the same file.
            key = "/".join(_components(name))
            by_path[key] = by_path.get(key, 0) + 1
    for path, count in by_path.items():
        if count > 1:
            out.add(
                "MG403",
                f"tar member {_show(path)!r} is stored {count} times: extraction keeps the "
                "last copy, a reader that stops at the first sees another",
                loc.inner(path),
                member=_show(path),
                count=str(count),
            )
    out.close()
