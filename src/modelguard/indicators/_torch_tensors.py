"""Tensors of PyTorch zip checkpoints (``torch.save``), located without running the pickle.

``<prefix>/data.pkl`` is run through the symbolic pickle VM; every
``torch._utils._rebuild_tensor_v2/_v3(PersRef(("storage", <class>, key, location, numel)),
storage_offset, size, stride, ...)`` call (also inside ``_rebuild_parameter``,
``_rebuild_parameter_with_state`` and ``torch._tensor._rebuild_from_type_v2``) becomes a
`TensorRef` on the stored member ``<prefix>/data/<key>``. Names come from the structure the
pickle builds (dicts, OrderedDict SETITEMS, lists; nested containers give dotted names);
rebuild calls no name reaches are listed as ``storage:<key>``. Private to
`modelguard.indicators.tensors`.
"""

from __future__ import annotations

from modelguard.config import Limits
from modelguard.errors import FormatError
from modelguard.formats.blob import Blob, SliceBlob
from modelguard.formats.zipread import ZipMember, ZipView, open_member
from modelguard.indicators.tensors import DTYPE_ITEMSIZE, TensorListing, TensorRef
from modelguard.picklevm.values import CallResult, DictV, GlobalRef, ListV, PersRef
from modelguard.picklevm.vm import run_pickle

__all__ = ["list_torch_zip"]

# Typed storage classes torch.save writes (torch.<Name>Storage) -> dtype.
_STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
}
# torch dtypes that _rebuild_tensor_v3 names (with an UntypedStorage) -> dtype.
_TORCH_DTYPES: dict[str, str] = {
    "float64": "F64",
    "double": "F64",
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "int64": "I64",
    "long": "I64",
    "int32": "I32",
    "int": "I32",
    "int16": "I16",
    "short": "I16",
    "int8": "I8",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
}
_REBUILD = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"})
_WRAPPERS = frozenset({"_rebuild_parameter", "_rebuild_parameter_with_state"})
_FROM_TYPE = frozenset({"_rebuild_from_type_v2"})  # tensor subclasses
_STORAGE_MODULES = frozenset({"torch", "torch.storage", "torch.cuda"})
_MAX_WALK_DEPTH = 64
# Attributes of a pickled torch.nn.Module that hold its parameters, buffers and submodules.
_MODULE_SLOTS = frozenset({"_parameters", "_buffers", "_modules"})


def _global(value: object, module: str, names: frozenset[str]) -> bool:
    return isinstance(value, GlobalRef) and value.module == module and value.name in names


def _rebuild_args(value: object) -> tuple[object, ...] | None:
    """The arguments of the tensor rebuild call `value` stands for (unwrapping parameters)."""
    for _ in range(4):
        if not isinstance(value, CallResult) or not isinstance(value.args, tuple):
            return None
        args: tuple[object, ...] = value.args
        if _global(value.func, "torch._utils", _REBUILD):
            return args
        if _global(value.func, "torch._utils", _WRAPPERS) and args:
            value = args[0]
        elif (
            _global(value.func, "torch._tensor", _FROM_TYPE)
            and len(args) >= 3
            and _global(args[0], "torch._utils", _REBUILD)
            and isinstance(args[2], tuple)
        ):
            return args[2]
        else:
            return None
    return None


def _tensor_call(value: object) -> CallResult | None:
    """The innermost rebuild CallResult of a tensor value (identity shared by tied names)."""
    for _ in range(4):
        if not isinstance(value, CallResult) or not isinstance(value.args, tuple):
            return None
        if _global(value.func, "torch._utils", _WRAPPERS) and value.args:
            value = value.args[0]
        else:
            return value if _rebuild_args(value) is not None else None
    return None


def _key_text(key: object) -> str | None:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    return None


def _children(value: object) -> list[tuple[str | None, object]] | None:
    """(key, child) pairs of a container the pickle built, or None for a leaf."""
    if isinstance(value, DictV):
        return [(_key_text(k), v) for k, v in value.pairs]
    if isinstance(value, (ListV, tuple)):
        items = value.items if isinstance(value, ListV) else list(value)
        return [(str(i), v) for i, v in enumerate(items)]
    if isinstance(value, CallResult):
        # OrderedDict()/dict() + SETITEMS keep pairs in `items`; other objects (a pickled
        # module, a namespace) keep their attributes in BUILD states, walked without a key.
        out: list[tuple[str | None, object]] = []
        for item in value.items:
            if isinstance(item, tuple) and len(item) == 2:
                out.append((_key_text(item[0]), item[1]))
        out.extend(("", state) for state in value.states)
        if isinstance(value.args, tuple) and value.args and isinstance(value.args[0], ListV):
            out.extend(
                (_key_text(item[0]), item[1])
                for item in value.args[0].items
                if isinstance(item, tuple) and len(item) == 2
            )
        return out
    return None


def _named_tensors(root: object) -> list[tuple[str, CallResult]]:
    """(dotted name, rebuild call) for every tensor reachable from the unpickled value."""
    found: list[tuple[str, CallResult]] = []
    seen: set[int] = set()
    stack: list[tuple[str, object, int]] = [("", root, 0)]
    while stack:
        prefix, value, depth = stack.pop()
        call = _tensor_call(value)
        if call is not None:
            found.append((prefix, call))
            continue
        if depth > _MAX_WALK_DEPTH or id(value) in seen:
            continue
        children = _children(value)
        if children is None:
            continue
        seen.add(id(value))
        for key, child in reversed(children):
            if key is None:
                continue
            if key in _MODULE_SLOTS and isinstance(value, DictV):
                key = ""  # a pickled nn.Module: name its tensors as its state_dict() does
            name = f"{prefix}.{key}" if prefix and key else prefix or key
            stack.append((name, child, depth + 1))
    return found


def _storage(pid: object) -> tuple[str, str | None] | None:
    """(key, dtype or None for an untyped storage) of a torch storage persistent id."""
    if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
        return None
    stype, key = pid[1], _key_text(pid[2])
    if not isinstance(stype, GlobalRef) or stype.module not in _STORAGE_MODULES or key is None:
        return None
    if stype.name == "UntypedStorage":
        return key, None
    dtype = _STORAGE_DTYPES.get(stype.name)
    return (key, dtype) if dtype is not None else (key, f"?{stype.name}")


def _ints(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, tuple):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    return value


def _torch_ref(
    path: str, name: str, args: tuple[object, ...], data: dict[str, list[ZipMember]]
) -> TensorRef | str:
    """The TensorRef of one rebuild call, or the reason it cannot be read in place."""
    pref = args[0] if args else None
    storage = _storage(pref.pid) if isinstance(pref, PersRef) else None
    if storage is None or len(args) < 4:
        return "not a torch storage view this reader understands"
    key, dtype = storage
    named = args[6] if len(args) >= 7 else None
    if dtype is None and isinstance(named, GlobalRef) and named.module == "torch":
        dtype = _TORCH_DTYPES.get(named.name)
    if dtype is None or dtype not in DTYPE_ITEMSIZE:
        return f"storage {key!r}: dtype {dtype or 'unknown'} is not a plain element type"
    offset, shape, stride = args[1], _ints(args[2]), _ints(args[3])
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or shape is None:
        return f"storage {key!r}: invalid offset or size"
    itemsize = DTYPE_ITEMSIZE[dtype]
    expected, step = [], 1
    for dim in reversed(shape):
        expected.append(step)
        step *= dim
    if (
        stride is None
        or len(stride) != len(shape)
        or any(d > 1 and s != e for d, s, e in zip(shape, stride, reversed(expected), strict=True))
    ):
        return f"storage {key!r}: non-contiguous view (stride {args[3]!r})"
    members = data.get(key, [])
    if len(members) != 1:
        return f"storage {key!r}: {len(members)} zip members hold it"
    member = members[0]
    if member.method != 0:
        return f"storage {key!r}: compressed zip member"
    numel = step
    begin, nbytes = offset * itemsize, numel * itemsize
    if begin + nbytes > member.compressed_size:
        return f"storage {key!r}: view [{begin}, {begin + nbytes}) beyond its {member.size} bytes"
    return TensorRef(
        name=name,
        dtype=dtype,
        shape=shape,
        path=path,
        offset=member.data_offset + begin,
        nbytes=nbytes,
        source="torch-zip",
        itemsize=itemsize,
    )


def list_torch_zip(
    path: str, blob: Blob, view: ZipView, pickle: ZipMember, limits: Limits
) -> TensorListing:
    """List the tensors of the torch checkpoint whose pickle is the zip member ``pickle``.

    Views that cannot be read in place (non-contiguous strides, compressed or missing storage
    members, dtypes without a plain element type) are listed in ``skipped``.

    Raises:
        FormatError: the pickle cannot be read to its STOP.
    """
    if pickle.method != 0:
        content: Blob = open_member(blob, pickle, limits)
    else:
        content = SliceBlob(blob, pickle.data_offset, pickle.compressed_size)
    result = run_pickle(content, 0, limits)
    if result.error is not None or not result.complete:
        raise FormatError(f"{path}: {pickle.name}: {result.error}", pickle.data_offset)
    folder = pickle.name[: -len("data.pkl")] + "data/"
    data: dict[str, list[ZipMember]] = {}
    for member in view.members:
        if member.name.startswith(folder):
            data.setdefault(member.name[len(folder) :], []).append(member)
    named = _named_tensors(result.value)
    reached = {id(call) for _, call in named}
    # Rebuild calls no name reaches (an object the walk does not understand) keep their
    # storage key as a name, so their bytes are still read.
    for call in result.calls:
        args = _rebuild_args(call)
        if id(call) in reached or args is None or call is not _tensor_call(call):
            continue
        storage = _storage(args[0].pid) if args and isinstance(args[0], PersRef) else None
        named.append((f"storage:{storage[0] if storage else call.offset}", call))
    entries: list[tuple[int, int, TensorRef]] = []
    skipped: list[tuple[str, str]] = []
    for index, (name, call) in enumerate(named):
        args = _rebuild_args(call)
        found = _torch_ref(path, name or "<root>", args or (), data)
        if isinstance(found, TensorRef):
            entries.append((found.offset, index, found))
        else:
            skipped.append((name or "<root>", found))
    entries.sort(key=lambda e: (e[0], e[1]))
    return TensorListing(tuple(e[2] for e in entries), tuple(skipped))
