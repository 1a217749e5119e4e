"""HDF5 metadata probe, run as a child process: ``python -m modelguard.formats.h5probe FILE``.

libhdf5 has had heap overflows on crafted files (CVE-2026-26200, HDF5 < 1.14.4-2), so the
scanner never opens a scanned HDF5 file in its own process: `modelguard.analysers.hdf5` runs
this module in a child with resource limits and a timeout, and reads the one JSON document it
prints on stdout. Nothing here judges; it only describes.

The walk uses h5py's low-level metadata calls only. Links are enumerated with ``H5Lvisit``
(which recurses through hard links only, so external and soft links are listed, never
followed); datasets are opened with an access property list whose external-file and virtual
prefixes point at a directory that does not exist, and no dataset data is ever read. The only
values read are a few small root attributes (the Keras configs), after their declared size
is checked.

Output (keys always present unless ``error`` is set)::

    {"attrs": {name: str}, "truncated_attrs": [name], "objects": int, "truncated": bool,
     "datasets": [{"path", "shape", "itemsize", "stored", "layout"}],
     "external_storage": [{"path", "files"}], "external_links": [{"path", "file", "target"}],
     "soft_links": [{"path", "target", "dangling"}], "other_links": [{"path", "type"}],
     "virtual": [{"path", "sources": [{"file", "dataset"}]}]}

``{"error": "no-h5py"}`` (exit status 3) when h5py is not installed; ``{"error": reason}``
(exit status 2) when the file cannot be opened or walked.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["ATTR_NAMES", "MAX_ATTR_BYTES", "MAX_LINKS", "main", "probe"]

# Root attributes Keras/tf-keras write and that are worth reading: the configs are walked
# for code references, the version and backend only label messages.
ATTR_NAMES = ("model_config", "training_config", "keras_version", "backend")
# A real model_config is kilobytes to a few megabytes; a larger one is reported truncated.
MAX_ATTR_BYTES = 16 * 1024 * 1024
# Links visited before the walk stops and reports itself truncated.
MAX_LINKS = 200_000
# Entries kept per list in the output (the count of links bounds the rest).
MAX_ENTRIES = 10_000
# Where HDF5 would look for external raw-data and virtual source files: a path that does not
# exist, so that opening a dataset can never touch a host file.
_H5T_STRING = 3
_NOWHERE = b"/nonexistent-modelguard-h5probe/"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _read_attrs(f: Any, h5a: Any) -> tuple[dict[str, str], list[str]]:
    """Read the small string root attributes, checking declared sizes before reading."""
    attrs: dict[str, str] = {}
    truncated: list[str] = []
    for name in ATTR_NAMES:
        key = name.encode()
        if not h5a.exists(f.id, key):
            continue
        attr = h5a.open(f.id, key)
        atype = attr.get_type()
        npoints = attr.get_space().get_simple_extent_npoints()
        if npoints != 1 or atype.get_class() != _H5T_STRING:
            truncated.append(name)
            continue
        if not atype.is_variable_str() and atype.get_size() > MAX_ATTR_BYTES:
            truncated.append(name)
            continue
        # A variable-length string is bounded by the file's size; the child's RLIMIT_AS
        # turns anything absurd into a MemoryError, reported as a failed probe.
        value = f.attrs[name]
        if hasattr(value, "tolist"):
            value = value.tolist()
        text = _text(value)
        if len(text) > MAX_ATTR_BYTES:
            truncated.append(name)
            continue
        attrs[name] = text
    return attrs, truncated


def probe(path: str) -> dict[str, Any]:
    """Describe the HDF5 file at `path` from its metadata; return the output document.

    Raises:
        ImportError: h5py is not installed.
        Exception: whatever h5py raises on a file it cannot read (the caller reports it).
    """
    import h5py  # type: ignore[import-untyped]
    from h5py import h5a, h5d, h5l, h5o, h5p

    out: dict[str, Any] = {
        "attrs": {},
        "truncated_attrs": [],
        "objects": 0,
        "truncated": False,
        "datasets": [],
        "external_storage": [],
        "external_links": [],
        "soft_links": [],
        "other_links": [],
        "virtual": [],
    }
    with h5py.File(path, "r", locking=False) as f:
        root = f.id
        rootgroup = h5py.h5g.open(root, b"/")
        out["attrs"], out["truncated_attrs"] = _read_attrs(f, h5a)
        dapl = h5p.create(h5p.DATASET_ACCESS)
        dapl.set_efile_prefix(_NOWHERE)
        dapl.set_virtual_prefix(_NOWHERE)
        dapl.set_virtual_view(h5d.VDS_FIRST_MISSING)
        links: list[tuple[bytes, int]] = []

        def collect(name: bytes, info: Any) -> int | None:
            if len(links) >= MAX_LINKS:
                out["truncated"] = True
                return 1
            links.append((name, info.type))
            return None

        rootgroup.links.visit(collect, info=True)
        out["objects"] = len(links)

        def add(key: str, entry: dict[str, Any]) -> None:
            if len(out[key]) < MAX_ENTRIES:
                out[key].append(entry)
            else:
                out["truncated"] = True

        # A soft link is resolved by hand against the names listed: asking HDF5 would
        # follow it, possibly through an external link into another file.
        known = {"/" + _text(n) for n, _ in links}
        for name, ltype in links:
            where = "/" + _text(name)
            if ltype == h5l.TYPE_SOFT:
                target = _text(rootgroup.links.get_val(name))
                parent = where.rsplit("/", 1)[0]
                absolute = target if target.startswith("/") else f"{parent}/{target}"
                dangling = _normalise(absolute) not in known
                add("soft_links", {"path": where, "target": target, "dangling": dangling})
                continue
            if ltype == h5l.TYPE_EXTERNAL:
                ext_file, ext_obj = rootgroup.links.get_val(name)
                add(
                    "external_links",
                    {"path": where, "file": _text(ext_file), "target": _text(ext_obj)},
                )
                continue
            if ltype != h5l.TYPE_HARD:
                add("other_links", {"path": where, "type": int(ltype)})
                continue
            info = h5o.get_info(rootgroup, name)
            if info.type != h5o.TYPE_DATASET:
                continue
            dset = h5d.open(rootgroup, name, dapl)
            _describe(dset, where, add, h5d)
    return out


def _normalise(path: str) -> str:
    """An HDF5 path with empty and "." components removed (".." is not special in HDF5)."""
    return "/" + "/".join(p for p in path.split("/") if p not in ("", "."))


def _describe(dset: Any, where: str, add: Any, h5d: Any) -> None:
    """Record one dataset's storage facts (no data is read)."""
    dcpl = dset.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        count = min(dcpl.get_virtual_count(), MAX_ENTRIES)
        sources = [
            {
                "file": _text(dcpl.get_virtual_filename(i)),
                "dataset": _text(dcpl.get_virtual_dsetname(i)),
            }
            for i in range(count)
        ]
        add("virtual", {"path": where, "sources": sources})
        return
    count = dcpl.get_external_count()
    if count:
        files = [_text(dcpl.get_external(i)[0]) for i in range(min(count, MAX_ENTRIES))]
        add("external_storage", {"path": where, "files": files})
    shape = dset.get_space().get_simple_extent_dims()
    add(
        "datasets",
        {
            "path": where,
            "shape": [int(n) for n in shape],
            "itemsize": int(dset.get_type().get_size()),
            "stored": int(dset.get_storage_size()),
            "layout": {h5d.COMPACT: "compact", h5d.CONTIGUOUS: "contiguous"}.get(
                layout, "chunked" if layout == h5d.CHUNKED else str(layout)
            ),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """Probe the file named on the command line; print one JSON document; return the status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(json.dumps({"error": "usage: python -m modelguard.formats.h5probe FILE"}))
        return 2
    try:
        import h5py  # noqa: F401
    except ImportError:
        print(json.dumps({"error": "no-h5py"}))
        return 3
    try:
        doc = probe(args[0])
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}))
        return 2
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
