"""Name classification by mechanism and call judgement by arguments."""

from __future__ import annotations

import pytest

from modelguard.config import Limits
from modelguard.formats.blob import BytesBlob
from modelguard.picklevm.vm import run_pickle
from modelguard.policy import Policy
from modelguard.policy.evaluate import evaluate_pickle
from modelguard.policy.names import Class, classify
from modelguard.results import Location, Severity


@pytest.mark.parametrize(
    ("module", "name", "proto", "klass", "family"),
    [
        ("posix", "system", 4, Class.DENY, "process"),
        ("nt", "system", 4, Class.DENY, "process"),
        ("pathlib", "os.system", 4, Class.DENY, "process"),
        ("random", "_os.rename", 4, Class.DENY, "process"),
        ("tempfile", "_os.unlink", 4, Class.DENY, ""),
        ("numpy", "testing._private.utils.runstring", 4, Class.DENY, "code-execution"),
        ("numpy", "__builtins__", 4, Class.DENY, ""),
        ("torch._utils", "_rebuild_tensor_v2.__globals__", 4, Class.DENY, "interpreter-state"),
        ("__builtin__", "eval", 2, Class.DENY, "code-execution"),
        ("__builtin__", "reduce", 2, Class.DENY, "call-forwarding"),  # mapped to functools
        ("__builtin__", "intern", 2, Class.DENY, "interpreter-state"),  # mapped to sys
        ("importlib", "import_module", 4, Class.DENY, "name-resolution"),
        ("pkgutil", "resolve_name", 4, Class.DENY, "name-resolution"),
        ("torch", "_dynamo.guards.GuardBuilder.get", 4, Class.DENY, "code-execution"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start", 4, Class.DENY, "process"),
        ("marshal", "loads", 4, Class.DENY, "code-object"),
        ("pathlib", "Path.touch", 4, Class.DENY, "file-system"),
        ("builtins", "getattr", 4, Class.CONDITIONAL, ""),
        ("functools", "partial", 4, Class.CONDITIONAL, ""),
        ("torch.storage", "_load_from_bytes", 4, Class.CONDITIONAL, ""),
        ("__main__", "MyNet", 4, Class.UNKNOWN, ""),
        ("some_pkg.models", "Thing", 4, Class.UNKNOWN, ""),
        ("torch._utils", "_rebuild_tensor_v2", 4, Class.ALLOW, ""),
        ("collections", "OrderedDict", 4, Class.ALLOW, ""),
    ],
)
def test_classify(module: str, name: str, proto: int, klass: Class, family: str) -> None:
    ruling = classify(module, name, proto)
    assert ruling.klass is klass, ruling
    if family:
        assert ruling.family == family


def _findings(data: bytes, policy: Policy | None = None) -> list[tuple[str, Severity]]:
    res = run_pickle(BytesBlob(data), 0, Limits())
    out = evaluate_pickle(res, Location("t"), policy or Policy())
    return sorted({(f.rule_id, f.severity) for f in out.findings}, key=lambda x: x[0])


GETATTR = b"cbuiltins\ngetattr\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # getattr of a method of a builtin type: inert
        (b"\x80\x02" + GETATTR + b"cbuiltins\nstr\nX\x04\x00\x00\x00join\x86R.", set()),
        # getattr(__import__('os'), 'system')
        (
            b"\x80\x02" + GETATTR + b"cbuiltins\n__import__\nX\x02\x00\x00\x00os\x85R"
            b"X\x06\x00\x00\x00system\x86R.",
            {"MG101", "MG103"},
        ),
        # getattr with a name computed at load time
        (b"\x80\x02" + GETATTR + b"cbuiltins\nstr\nccodecs\ndecode\n)R\x86R.", {"MG102", "MG103"}),
        # calling the result of a call
        (b"\x80\x02cbuiltins\nstr\n)R)R.", {"MG103"}),
        # type(None) is inert, type(name, bases, ns) synthesises a class
        (b"\x80\x02cbuiltins\ntype\nN\x85R.", set()),
        (b"\x80\x02cbuiltins\ntype\nX\x01\x00\x00\x00A)}\x87R.", {"MG103"}),
        # partial of an allowlisted callable is fine; of a loader it is not
        (b"\x80\x02cfunctools\npartial\ncbuiltins\nset\n\x85R.", set()),
        (b"\x80\x02cfunctools\npartial\nctorch\nload\n\x85R.", {"MG103"}),
        # a loader passed as a value, never called directly
        (b"\x80\x02ccollections\nOrderedDict\nctorch\nload\n\x85R.", {"MG103"}),
        # copyreg registration is a state change
        (
            b"\x80\x02ccopyreg\nadd_extension\n(X\x01\x00\x00\x00aX\x01\x00\x00\x00bK\x09tR.",
            {"MG101", "MG104"},
        ),
        # BUILD on an imported function
        (b"\x80\x02ccopy\ncopy\n}X\x01\x00\x00\x00xK\x01sb.", {"MG101", "MG104"}),
        # unregistered EXT code
        (b"\x80\x02\x82\x07)R.", {"MG105"}),
        # the saving script's own class: suspicious only
        (b"\x80\x02c__main__\nNet\n)\x81}b.", {"MG102"}),
    ],
)
def test_calls_are_judged_by_what_they_reach(data: bytes, expected: set[str]) -> None:
    assert {rule for rule, _ in _findings(data)} == expected


def test_unknown_global_is_medium_and_policy_can_allow_it() -> None:
    data = b"\x80\x02c__main__\nNet\n)\x81."
    assert _findings(data) == [("MG102", Severity.MEDIUM)]
    policy = Policy(allow={"__main__:Net": "our model, reviewed"})
    assert _findings(data, policy) == []
    assert _findings(data, Policy(allow={"__main__:*": "everything from our script"})) == []


def test_allowlist_pattern_does_not_cover_dotted_attributes() -> None:
    policy = Policy(allow={"mypkg.*:*": "ours"})
    assert _findings(b"\x80\x04\x8c\x05mypkg\x8c\x05A.b.c\x93.", policy) == [
        ("MG102", Severity.MEDIUM)
    ]


def test_severity_override() -> None:
    data = b"\x80\x02c__main__\nNet\n)\x81."
    policy = Policy(severity={"MG102": Severity.LOW})
    assert _findings(data, policy) == [("MG102", Severity.LOW)]


def test_compiled_tables_match_the_toml_sources() -> None:
    """`tables.json` is generated from the TOML files: `python -m modelguard.policy.names`."""
    import json

    from modelguard.policy import names

    compiled = json.loads(names._COMPILED.read_text("utf-8"))
    assert compiled == names.compile_tables(), "run: python -m modelguard.policy.names"


def test_construct_only_classes_pass_newobj_but_not_a_call() -> None:
    cls = b"ctransformers.training_args\nTrainingArguments\n"
    assert _findings(b"\x80\x02" + cls + b")\x81}b.") == []
    called = _findings(b"\x80\x02" + cls + b")R.")
    assert called == [("MG102", Severity.MEDIUM)]


def test_transformers_model_classes_are_construct_only() -> None:
    ruling = classify("transformers.models.bert.modeling_bert", "BertModel")
    assert ruling.klass is Class.ALLOW and ruling.construct_only
    assert classify("transformers.models.bert.modeling_bert", "os").klass is not Class.ALLOW


def test_build_slotstate_dunder_is_a_mutation() -> None:
    # OrderedDict() then BUILD (None, {'__class__': ...}): setattr rewires the object's class.
    data = (
        b"\x80\x02ccollections\nOrderedDict\n)R"
        b"N}X\t\x00\x00\x00__class__ccollections\nOrderedDict\ns\x86b."
    )
    assert {rule for rule, _ in _findings(data)} == {"MG104"}
    plain = b"\x80\x02ccollections\nOrderedDict\n)RN}X\x01\x00\x00\x00aK\x01s\x86b."
    assert _findings(plain) == []


def _short(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _scipy_dist(template: str) -> bytes:
    return (
        b"\x80\x04"
        + _short("scipy.stats._discrete_distns")
        + _short("randint_gen")
        + b"\x93)\x81}"
        + _short("_parse_arg_template")
        + _short(template)
        + b"sb."
    )


def test_scipy_distribution_state_is_checked() -> None:
    benign = "\ndef _parse_args(self, low, high,  loc=0):\n    return (low, high, ), loc, 1\n"
    assert _findings(_scipy_dist(benign)) == []
    hostile = "import os\nos.system('id')\n"
    assert ("MG103", Severity.CRITICAL) in _findings(_scipy_dist(hostile))


def test_script_object_state_must_name_a_quantized_class() -> None:
    def script_object(class_name: str) -> bytes:
        return (
            b"\x80\x02ctorch\nScriptObject\n)\x81(tX"
            + len(class_name).to_bytes(4, "little")
            + class_name.encode()
            + b"\x86b."
        )

    good = "__torch__.torch.classes.quantized.LinearPackedParamsBase"
    assert _findings(script_object(good)) == []
    assert ("MG103", Severity.CRITICAL) in _findings(script_object("__torch__.evil.Runner"))
