"""Format analysers: what each non-pickle format and config file would make a loader do.

`modelguard.filescan.FileScan` recognises content and hands it here; each analyser parses
with its own bounded reader from `modelguard.formats` (never the framework's loader) and
reports through the scan:

- `scan.finding(rule_id, message, loc, **evidence)`: a finding (MG4xx rules in
  `modelguard.rules`), evidence values are short strings;
- `scan.incomplete(rule_id, reason, loc)`: the analysis could not finish (MG002 malformed,
  MG003 a named limit, MG004 needs an optional reader), so the file is never reported safe;
- `scan.analyse(blob, loc, depth + 1)`: content embedded in the format, analysed recursively.

`scan.path` is the file on disk when the scan started from one (loaders look beside it:
ONNX external data, shard indexes, `auto_map` modules); it is None for archive members.
"""
