"""TensorFlow graphs: ops that run Python, touch host files or read data from paths.

"TensorFlow models are programs" (tensorflow/SECURITY.md): running a SavedModel's or a
GraphDef's graph runs every op in it, including Python callbacks (PyFunc, EagerPyFunc) and
file I/O (ReadFile, WriteFile). Every op of the graph and of every library function
(`tf.function` bodies, control-flow branches) is judged.

Saver awareness: every SavedModel writes and reads its variables through SaveV2, RestoreV2
and MergeV2Checkpoints. Those ops are accepted only where TensorFlow puts them: in the TF2
functions `__inference__traced_save_N` / `__inference__traced_restore_N` and in the TF1
saver's nodes named `save/...` (or `save_N/...`) of a graph. Anywhere else they write or
read checkpoint files at a path the graph computes, and are reported like WriteFile. Pure
string ops of the saver (ShardedFilename, StringJoin) are never reported. ReadFile,
WriteFile and the other host-access ops are reported everywhere, saver context included.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from modelguard.analysers import report_duplicates
from modelguard.errors import FormatError
from modelguard.formats.jsonstrict import parse_json
from modelguard.formats.protowire import Budget
from modelguard.formats.tfgraph import (
    TfGraph,
    TfNode,
    read_graphdef,
    read_meta_graph,
    read_saved_model,
)

if TYPE_CHECKING:
    from modelguard.filescan import FileScan
    from modelguard.formats.blob import Blob
    from modelguard.results import Location

__all__ = [
    "DANGEROUS_OPS",
    "RISKY_OPS",
    "SAVER_OPS",
    "read_tf_graph",
    "report_keras_metadata",
    "report_tf_graph",
]

# MG460: Python callbacks, file reads/writes, memory-mapped files, RPC.
DANGEROUS_OPS: dict[str, str] = {
    "PyFunc": "runs a Python function of the host process",
    "PyFuncStateless": "runs a Python function of the host process",
    "EagerPyFunc": "runs a Python function of the host process",
    "ReadFile": "reads a host file into a tensor",
    "WriteFile": "writes a tensor to a host file",
    "MatchingFiles": "lists host files matching a pattern",
    "ImmutableConst": "memory-maps a host file as a constant",
    "WholeFileReader": "reads whole host files",
    "WholeFileReaderV2": "reads whole host files",
    "DatasetToTFRecord": "writes a dataset to a host file",
    "SaveDataset": "writes a dataset to a host directory",
    "SaveDatasetV2": "writes a dataset to a host directory",
    "Rpc": "makes a network call",
    "TryRpc": "makes a network call",
}
# Checkpoint I/O: accepted only in the saver context (see the module docstring).
SAVER_OPS: dict[str, str] = {
    "SaveV2": "writes a checkpoint to a path the graph computes",
    "Save": "writes a checkpoint to a path the graph computes",
    "SaveSlices": "writes a checkpoint to a path the graph computes",
    "MergeV2Checkpoints": "moves and deletes checkpoint files at paths the graph computes",
    "RestoreV2": "reads a checkpoint from a path the graph computes",
    "Restore": "reads a checkpoint from a path the graph computes",
    "RestoreSlice": "reads a checkpoint from a path the graph computes",
}
# MG461: readers of data files named in the graph, and file-writing summaries.
RISKY_OPS: dict[str, str] = {
    **{
        op: "reads records from host files"
        for op in (
            "TFRecordDataset",
            "TFRecordDatasetV2",
            "TextLineDataset",
            "TextLineDatasetV2",
            "FixedLengthRecordDataset",
            "FixedLengthRecordDatasetV2",
            "CSVDataset",
            "CSVDatasetV2",
            "ExperimentalCSVDataset",
            "SqlDataset",
            "ExperimentalSqlDataset",
            "LMDBDataset",
            "ExperimentalLMDBDataset",
            "LoadDataset",
            "TFRecordReader",
            "TFRecordReaderV2",
            "TextLineReader",
            "TextLineReaderV2",
            "FixedLengthRecordReader",
            "FixedLengthRecordReaderV2",
            "LMDBReader",
        )
    },
    "SnapshotDataset": "reads and writes dataset snapshots in a host directory",
    "SnapshotDatasetV2": "reads and writes dataset snapshots in a host directory",
    "InitializeTableFromTextFile": "fills a lookup table from a host file",
    "InitializeTableFromTextFileV2": "fills a lookup table from a host file",
    "LoadAndRemapMatrix": "reads a matrix from a checkpoint file",
    "CreateSummaryFileWriter": "writes summary event files to a host directory",
    "CreateSummaryDbWriter": "writes summaries to a database file",
}
# PrintV2 writes to these without touching files; anything else ("file://...") is a path.
_PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})
_SAVER_FUNCTION = re.compile(r"__inference__traced_(save|restore)_\d+")
_SAVER_NODE = re.compile(r"save(_\d+)?/")
_ATTRS = {"PrintV2": frozenset({"output_stream"})}


def _in_saver(node: TfNode) -> bool:
    if node.function is None:
        return bool(_SAVER_NODE.match(node.name))
    return bool(_SAVER_FUNCTION.fullmatch(node.function))


def _judge(node: TfNode) -> tuple[str, str] | None:
    """Return (rule, what the op does) for a node that is reported, else None."""
    if node.op in DANGEROUS_OPS:
        return "MG460", DANGEROUS_OPS[node.op]
    if node.op in SAVER_OPS and not _in_saver(node):
        return "MG460", SAVER_OPS[node.op] + " outside the standard save/restore functions"
    if node.op in RISKY_OPS:
        return "MG461", RISKY_OPS[node.op]
    if node.op == "PrintV2":
        stream = dict(node.attrs).get("output_stream", "stderr")
        if stream not in _PRINT_STREAMS:
            return "MG461", f"prints to output stream {stream[:120]!r}"
    return None


def _report(scan: FileScan, graph: TfGraph, loc: Location) -> None:
    # One finding per (rule, op, function): a dataset pipeline repeats the same op.
    groups: dict[tuple[str, str, str | None], tuple[TfNode, str, int]] = {}
    for node in graph.nodes:
        verdict = _judge(node)
        if verdict is None:
            continue
        key = (verdict[0], node.op, node.function)
        first, what, count = groups.get(key, (node, verdict[1], 0))
        groups[key] = (first, what, count + 1)
    for (rule, op, function), (node, what, count) in groups.items():
        where = f"function {function[:120]!r}" if function is not None else "the graph"
        more = f" ({count} nodes)" if count > 1 else ""
        scan.finding(
            rule,
            f"op {op[:80]} in {where} {what}{more}",
            loc,
            op=op[:200],
            node=node.name[:200],
            function="" if function is None else function[:200],
            nodes=str(count),
        )


_READERS = {
    "tf-savedmodel": ("SavedModel", read_saved_model),
    "tf-metagraph": ("MetaGraphDef", read_meta_graph),
    "tf-graphdef": ("GraphDef", read_graphdef),
}


def read_tf_graph(blob: Blob, kind: str, budget: Budget) -> TfGraph:
    """Read a TensorFlow graph of `kind` with the attributes the judging needs.

    Raises:
        FormatError: the bytes are not a well-formed message of that kind.
        LimitExceeded: the field budget was reached.
    """
    return _READERS[kind][1](blob, _ATTRS, budget)


def report_tf_graph(scan: FileScan, graph: TfGraph, loc: Location) -> None:
    """Judge every node of a graph already read: MG460 and MG461."""
    _report(scan, graph, loc)


def report_keras_metadata(
    scan: FileScan, objects: tuple[tuple[str, str], ...], loc: Location
) -> None:
    """Hand each (identifier, metadata JSON) of `keras_metadata.pb` to the Keras checks."""
    for index, (identifier, text) in enumerate(objects):
        if not text:
            continue
        where = loc.inner(f"<node {index}>")
        try:
            doc = parse_json(text)
        except FormatError as exc:
            scan.incomplete("MG002", f"Keras metadata of {identifier!r} is not JSON: {exc}", where)
            continue
        if doc.duplicates:
            report_duplicates(scan, "Keras metadata JSON", list(doc.duplicates), where)
        obj = doc.value
        if isinstance(obj, dict):
            # Layer and model metadata hold "class_name" and "config"; the model's also holds
            # its training config (losses, metrics, optimizer), which Keras deserialises too,
            # so every object is handed over whole (the Keras checks walk any nesting).
            from modelguard.analysers.keras import check_keras_config

            check_keras_config(scan, obj, where)
