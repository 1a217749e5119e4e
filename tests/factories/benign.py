"""Benign artifacts made by the real ML libraries, for false-positive and allowlist tests.

Every sample is built at test time by the library that would make it in the wild (torch,
scikit-learn, joblib, numpy, pandas, transformers, dill, cloudpickle, the stdlib pickler). A
sample's ``build`` writes one artifact into the given directory and returns its path; nothing
here loads an artifact back.

``may_be_suspicious`` marks samples a scanner may legitimately flag: they name a class from the
saving script (``__main__``) or a global that is deliberately not on the shipped allowlist
(listed in ``unlisted``, with the reason in the sample's comment). Every other sample must scan
clean, and every global it references must be on the allowlist.

Libraries are imported inside the builders, so importing this module is cheap; ``requires``
names the top-level modules a sample needs, so a test can skip what is not installed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import io
import pathlib
import pickle
import random
import re
import shutil
import sys
import tempfile
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SAMPLES", "BenignSample", "by_id"]


@dataclass(frozen=True)
class BenignSample:
    """One benign artifact factory.

    ``build(directory)`` writes the artifact into ``directory`` and returns its path.
    ``unlisted`` names the ``module:qualname`` globals the artifact references that are
    deliberately not allowlisted (besides ``__main__`` ones); only suspicious samples have any.
    """

    id: str
    library: str
    build: Callable[[Path], Path]
    may_be_suspicious: bool = False
    requires: tuple[str, ...] = ()
    unlisted: frozenset[str] = field(default_factory=frozenset)


# --------------------------------------------------------------------------------------------
# helpers


def _dump(obj: Any, path: Path, protocol: int) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence library warnings (convergence, deprecations) while building a sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _quietly(build: Callable[[Path], Path]) -> Callable[[Path], Path]:
    """Wrap a builder so that library warnings (betas, deprecations) do not reach the tests."""

    @functools.wraps(build)
    def quiet_build(directory: Path) -> Path:
        with _quiet():
            return build(directory)

    return quiet_build


@contextlib.contextmanager
def _as_main(*objs: Any) -> Iterator[None]:
    """Make ``objs`` picklable as ``__main__.<name>``, like classes defined in a training script.

    The pickler checks that ``sys.modules['__main__'].<qualname>`` is the object, so they are
    published there for the duration of the dump and removed afterwards.
    """
    main = sys.modules["__main__"]
    for obj in objs:
        obj.__module__ = "__main__"
        setattr(main, obj.__qualname__, obj)
    try:
        yield
    finally:
        for obj in objs:
            with contextlib.suppress(AttributeError):
                delattr(main, obj.__qualname__)


# --------------------------------------------------------------------------------------------
# torch: tensors and state dicts


def _torch_seed() -> Any:
    import torch

    torch.manual_seed(0)
    return torch


def _torch_dtypes_state_dict(d: Path) -> Path:
    torch = _torch_seed()
    sd = collections.OrderedDict()
    for dt in (
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int8,
        torch.uint8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.bool,
        torch.complex64,
        torch.complex128,
        # Newer dtypes without a legacy storage class go through _rebuild_tensor_v3.
        torch.float8_e4m3fn,
        torch.float8_e5m2,
        torch.uint16,
        torch.uint32,
        torch.uint64,
    ):
        sd[f"w_{str(dt).removeprefix('torch.')}"] = torch.ones(2, 3).to(dt)
    path = d / "dtypes_state_dict.pt"
    torch.save(sd, path)
    return path


def _torch_layouts_state_dict(d: Path) -> Path:
    torch = _torch_seed()
    dense = torch.randn(4, 4)
    base = torch.arange(12.0)
    sd = {
        "coo": dense.to_sparse(),
        "csr": dense.to_sparse_csr(),
        "csc": dense.to_sparse_csc(),
        "bsr": dense.to_sparse_bsr((2, 2)),
        "q_tensor": torch.quantize_per_tensor(dense, 0.1, 3, torch.quint8),
        "q_channel": torch.quantize_per_channel(
            dense, torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0, 1, 2, 3]), 0, torch.qint8
        ),
        "q_int32": torch.quantize_per_tensor(dense, 0.5, 0, torch.qint32),
        # Views of one storage: a single storage record, several tensor records.
        "base": base,
        "view": base[2:8],
        "strided": base.view(3, 4).t(),
        "empty": torch.empty(0),
        "empty_2d": torch.zeros(0, 5),
        "scalar": torch.tensor(3.5),
        "conj": torch.randn(3, dtype=torch.complex64).conj(),
        "channels_last": torch.randn(1, 2, 3, 3).to(memory_format=torch.channels_last),
        "meta": torch.empty(2, 3, device="meta"),
        "requires_grad": torch.randn(2, requires_grad=True).detach().requires_grad_(),
        "param": torch.nn.Parameter(torch.randn(2)),
    }
    path = d / "layouts_state_dict.pt"
    torch.save(sd, path)
    return path


def _torch_nested_tensor(d: Path) -> Path:
    torch = _torch_seed()
    nt = torch.nested.nested_tensor([torch.randn(2), torch.randn(3)])
    path = d / "nested.pt"
    torch.save({"nested": nt}, path)
    return path


def _torch_tensor_with_attrs(d: Path) -> Path:
    torch = _torch_seed()
    t = torch.randn(3)
    t.note = "calibrated"  # a Python attribute: pickled through _rebuild_from_type_v2
    p = torch.nn.Parameter(torch.randn(2))
    p.tag = 7  # pickled through _rebuild_parameter_with_state
    path = d / "tensor_attrs.pt"
    torch.save({"t": t, "p": p}, path)
    return path


def _torch_python_values(d: Path) -> Path:
    torch = _torch_seed()
    obj = {
        "epoch": 3,
        "step": 1200,
        "best_metric": 0.913,
        "losses": [0.9, 0.5, 0.31],
        "name": "run-1",
        "flags": (True, False, None),
        "nested": {"a": [1, 2, {"b": b"bytes"}]},
        "tensor": torch.arange(4),
        "torch_version": torch.__version__,  # a str subclass: torch.torch_version.TorchVersion
    }
    path = d / "python_values.pt"
    torch.save(obj, path)
    return path


def _torch_metadata_objects(d: Path) -> Path:
    torch = _torch_seed()
    dtypes = sorted(
        {v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=lambda v: str(v)
    )
    obj = {
        "size": torch.Size([2, 3, 4]),
        "empty_size": torch.Size([]),
        "devices": [torch.device("cpu"), torch.device("cuda", 0), torch.device("meta")],
        "dtypes": dtypes,
        "layouts": [torch.strided, torch.sparse_coo, torch.sparse_csr, torch.sparse_csc],
        "qschemes": [torch.per_tensor_affine, torch.per_channel_affine],
    }
    path = d / "metadata.pt"
    torch.save(obj, path)
    return path


def _torch_memory_formats_p4(d: Path) -> Path:
    # memory_format reduces to a dotted name ("torch.channels_last") that pickle resolves
    # through whichmodule: only protocol 4+ can write it (protocol 2 fails), and the module
    # written is the first one in sys.modules exposing ``torch`` (torch._utils).
    torch = _torch_seed()
    obj = {"formats": [torch.contiguous_format, torch.channels_last, torch.channels_last_3d]}
    path = d / "memory_formats_p4.pt"
    torch.save(obj, path, pickle_protocol=4)
    return path


def _torch_numpy_inside(d: Path) -> Path:
    torch = _torch_seed()
    import numpy as np

    obj = {
        "array": np.arange(6, dtype=np.float32).reshape(2, 3),
        "ints": np.array([1, 2, 3], dtype=np.int64),
        "scalar": np.float64(0.25),
        "int_scalar": np.int64(7),
        "tensor": torch.ones(2),
    }
    path = d / "with_numpy.pt"
    torch.save(obj, path)
    return path


def _torch_plain_pickle(d: Path) -> Path:
    # Tensors pickled by the stdlib pickler (pickle/joblib of objects holding tensors, e.g.
    # skorch models) store each storage as torch.storage._load_from_bytes(<legacy torch.save
    # bytes>): a nested torch.load, judged by the scanner from its argument.
    torch = _torch_seed()
    return _dump(torch.nn.Linear(3, 2).state_dict(), d / "state_dict.plain.pkl", 4)


def _torch_legacy(d: Path) -> Path:
    torch = _torch_seed()
    sd = torch.nn.Linear(4, 3).state_dict()
    sd["half"] = torch.ones(2, dtype=torch.float16)
    sd["view"] = sd["weight"][1:]
    path = d / "legacy_state_dict.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    return path


def _torch_legacy_model(d: Path) -> Path:
    torch = _torch_seed()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path = d / "legacy_model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=False)
    return path


def _torch_quantized_model_state_dict(d: Path) -> Path:
    torch = _torch_seed()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    path = d / "quantized_dynamic_state_dict.pt"
    torch.save(qmodel.state_dict(), path)
    return path


# --------------------------------------------------------------------------------------------
# torch: whole nn.Module saves


def _torch_model_mlp(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 32),
        nn.LayerNorm(32),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(32, 32, bias=False),
        nn.GELU(),
        nn.SiLU(),
        nn.Tanh(),
        nn.Sigmoid(),
        nn.LeakyReLU(0.1),
        nn.ELU(),
        nn.Softplus(),
        nn.Mish(),
        nn.Hardswish(),
        nn.PReLU(),
        nn.Identity(),
        nn.Linear(32, 8),
        nn.Softmax(dim=-1),
        nn.LogSoftmax(dim=-1),
        nn.Unflatten(1, (2, 4)),
    )
    model.eval()
    path = d / "model_mlp.pt"
    torch.save(model, path)
    return path


def _torch_model_cnn(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1),
        nn.BatchNorm1d(4),
        nn.Unflatten(1, (4, 1)),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.GroupNorm(2, 8),
        nn.InstanceNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d((1, 2)),
        nn.AvgPool2d(1),
        nn.ConvTranspose2d(8, 4, 2),
        nn.Upsample(scale_factor=2.0, mode="nearest"),
        nn.ZeroPad2d(1),
        nn.Dropout2d(0.1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.PixelShuffle(1),
        nn.Flatten(),
    )
    # A forward pass updates the BatchNorm running statistics (num_batches_tracked).
    model(torch.randn(2, 2, 8))
    path = d / "model_cnn.pt"
    torch.save(model, path)
    return path


def _torch_model_rnn(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn
    model = nn.ModuleDict(
        {
            "embedding": nn.Embedding(50, 8, padding_idx=0),
            "bag": nn.EmbeddingBag(50, 8, mode="mean"),
            "lstm": nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True),
            "gru": nn.GRU(8, 16, batch_first=True),
            "rnn": nn.RNN(8, 8),
            "cell": nn.LSTMCell(8, 8),
            "head": nn.ModuleList([nn.Linear(32, 2), nn.Linear(16, 2)]),
        }
    )
    model["lstm"](torch.randn(2, 5, 8))
    path = d / "model_rnn.pt"
    torch.save(model, path)
    return path


def _torch_model_transformer(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn
    enc_layer = nn.TransformerEncoderLayer(
        d_model=16, nhead=2, dim_feedforward=32, batch_first=True
    )
    model = nn.ModuleDict(
        {
            "encoder": nn.TransformerEncoder(enc_layer, num_layers=2, enable_nested_tensor=False),
            "decoder_layer": nn.TransformerDecoderLayer(
                d_model=16, nhead=2, dim_feedforward=32, activation="gelu"
            ),
            "mha": nn.MultiheadAttention(16, 2, kdim=8, vdim=8),
            "transformer": nn.Transformer(
                d_model=16,
                nhead=2,
                num_encoder_layers=1,
                num_decoder_layers=1,
                dim_feedforward=32,
            ),
        }
    )
    model.eval()
    path = d / "model_transformer.pt"
    torch.save(model, path)
    return path


def _torch_model_containers(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn
    model = nn.Sequential(
        collections.OrderedDict(
            [
                ("blocks", nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])),
                ("params", nn.ParameterList([nn.Parameter(torch.randn(2)) for _ in range(2)])),
                ("pdict", nn.ParameterDict({"scale": nn.Parameter(torch.ones(1))})),
                ("loss", nn.CrossEntropyLoss(label_smoothing=0.1)),
                ("mse", nn.MSELoss()),
                ("bce", nn.BCEWithLogitsLoss(pos_weight=torch.ones(1))),
            ]
        )
    )
    model.register_buffer("step", torch.tensor(0))
    model.register_buffer("scratch", torch.zeros(1), persistent=False)
    path = d / "model_containers.pt"
    torch.save(model, path)
    return path


def _torch_model_weight_norm(d: Path) -> Path:
    # torch.nn.utils.weight_norm / spectral_norm (deprecated but common in audio and GAN
    # models) store hook objects in the module's hook dicts, so they are pickled with it.
    torch = _torch_seed()
    model = torch.nn.Sequential(
        torch.nn.utils.weight_norm(torch.nn.Conv1d(2, 2, 3)),
        torch.nn.utils.spectral_norm(torch.nn.Linear(2, 2)),
    )
    path = d / "model_weight_norm.pt"
    torch.save(model, path)
    return path


def _torch_model_main_class(d: Path) -> Path:
    torch = _torch_seed()
    nn = torch.nn

    class MyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)
            self.act = nn.ReLU()

        def forward(self, x: Any) -> Any:
            return self.act(self.fc(x))

    MyNet.__qualname__ = "MyNet"
    path = d / "model_main_class.pt"
    with _as_main(MyNet):
        torch.save(MyNet(), path)
    return path


# --------------------------------------------------------------------------------------------
# torch: optimizers and LR schedulers


def _params(torch: Any) -> list[Any]:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    return [
        {"params": model[0].parameters()},
        {"params": model[1].parameters(), "lr": 0.01, "weight_decay": 0.0},
    ]


def _stepped(opt: Any, torch: Any) -> Any:
    loss = sum((p.sum() for g in opt.param_groups for p in g["params"]), torch.tensor(0.0))
    loss.backward()
    opt.step()
    return opt


def _optimizer_state_dicts(d: Path) -> Path:
    torch = _torch_seed()
    o = torch.optim
    states = {
        "sgd": _stepped(o.SGD(_params(torch), lr=0.1, momentum=0.9, nesterov=True), torch),
        "adam": _stepped(o.Adam(_params(torch), lr=1e-3, amsgrad=True), torch),
        "adamw": _stepped(o.AdamW(_params(torch), lr=1e-3), torch),
        "rmsprop": _stepped(o.RMSprop(_params(torch), lr=1e-3, momentum=0.5), torch),
        "adagrad": _stepped(o.Adagrad(_params(torch), lr=1e-2), torch),
    }
    path = d / "optimizers_state_dict.pt"
    torch.save({k: v.state_dict() for k, v in states.items()}, path)
    return path


def _optimizer_objects(d: Path) -> Path:
    torch = _torch_seed()
    o = torch.optim
    opts = [
        _stepped(o.SGD(_params(torch), lr=0.1, momentum=0.9), torch),
        _stepped(o.Adam(_params(torch), lr=1e-3), torch),
        _stepped(o.AdamW(_params(torch), lr=1e-3), torch),
        _stepped(o.RMSprop(_params(torch), lr=1e-3), torch),
    ]
    path = d / "optimizer_objects.pt"
    torch.save(opts, path)
    return path


def _lambda_warmup(step: int) -> float:
    return min(1.0, (step + 1) / 10)


def _scheduler_state_dicts(d: Path) -> Path:
    torch = _torch_seed()
    o = torch.optim
    lr = o.lr_scheduler

    def opt() -> Any:
        return o.SGD(_params(torch), lr=0.1, momentum=0.9)

    scheds = {
        "step": lr.StepLR(opt(), step_size=10, gamma=0.5),
        "cosine": lr.CosineAnnealingLR(opt(), T_max=100),
        "onecycle": lr.OneCycleLR(opt(), max_lr=0.1, total_steps=100),
        # LambdaLR.state_dict drops plain functions but keeps callable objects' __dict__.
        "lambda": lr.LambdaLR(opt(), lr_lambda=_lambda_warmup),
        "lambda_partial": lr.LambdaLR(opt(), lr_lambda=functools.partial(_lambda_warmup)),
        "plateau": lr.ReduceLROnPlateau(opt()),
        "warm_restarts": lr.CosineAnnealingWarmRestarts(opt(), T_0=10),
        "cyclic": lr.CyclicLR(opt(), base_lr=0.01, max_lr=0.1),
    }
    for s in scheds.values():
        s.optimizer.step()
        if isinstance(s, lr.ReduceLROnPlateau):
            s.step(1.0)
        else:
            s.step()
    path = d / "schedulers_state_dict.pt"
    torch.save({k: v.state_dict() for k, v in scheds.items()}, path)
    return path


def _scheduler_object(d: Path) -> Path:
    torch = _torch_seed()
    opt = torch.optim.SGD(_params(torch), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
    path = d / "scheduler_object.pt"
    torch.save(sched, path)
    return path


# --------------------------------------------------------------------------------------------
# transformers / Trainer checkpoints


@functools.lru_cache(maxsize=1)
def _trainer_checkpoint() -> dict[str, bytes]:
    """Run a real two-step Trainer on a tiny config-built BERT and return its checkpoint files."""
    torch = _torch_seed()
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)

    class _Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": torch.tensor([1, 2, 3, 4]), "labels": torch.tensor(i % 2)}

    out = Path(tempfile.mkdtemp(prefix="modelguard-trainer-"))
    try:
        args = TrainingArguments(
            output_dir=str(out),
            max_steps=2,
            save_steps=2,
            per_device_train_batch_size=4,
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            logging_strategy="no",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            Trainer(model=model, args=args, train_dataset=_Data()).train()
        ckpt = out / "checkpoint-2"
        return {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _trainer_file(name: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        path = d / name
        path.write_bytes(_trainer_checkpoint()[name])
        return path

    return build


def _hf_training_args_unused(d: Path) -> Path:
    # TrainingArguments saved right after construction (device never resolved).
    _torch_seed()
    import torch
    from transformers import TrainingArguments

    path = d / "training_args.bin"
    torch.save(TrainingArguments(output_dir=str(d / "out"), report_to=[]), path)
    return path


def _hf_scheduler_object(d: Path) -> Path:
    # torch.save of the scheduler object itself (not its state_dict): transformers'
    # schedules are LambdaLR over functools.partial(<module-level lr lambda>, **ints).
    torch = _torch_seed()
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    path = d / "scheduler_object.pt"
    torch.save(get_linear_schedule_with_warmup(opt, 10, 100), path)
    return path


def _hf_seq2seq_args(d: Path) -> Path:
    _torch_seed()
    import torch
    from transformers import Seq2SeqTrainingArguments

    path = d / "training_args.bin"
    args = Seq2SeqTrainingArguments(
        output_dir=str(d / "out"), report_to=[], predict_with_generate=True, eval_strategy="epoch"
    )
    torch.save(args, path)
    return path


def _hf_bert_state_dict(d: Path) -> Path:
    torch = _torch_seed()
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    path = d / "pytorch_model.bin"
    torch.save(BertModel(config).state_dict(), path)
    return path


def _hf_gpt2_state_dict(d: Path) -> Path:
    torch = _torch_seed()
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    path = d / "pytorch_model.bin"
    torch.save(GPT2LMHeadModel(config).state_dict(), path)
    return path


def _torch_quantized_whole(d: Path) -> Path:
    """Whole-model save of a dynamically quantized model (packed params in a ScriptObject)."""
    torch = _torch_seed()
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, torch.qint8)
    path = d / "quantized.pt"
    with _quiet():
        torch.save(quantized, path)
    return path


def _boosting(library: str, how: str) -> Callable[[Path], Path]:
    """A fitted XGBoost or LightGBM scikit-learn model, pickled or joblib-dumped."""

    def build(d: Path) -> Path:
        import numpy as np

        rng = np.random.default_rng(0)
        X = rng.random((40, 4))
        y = (X[:, 0] > 0.5).astype(int)
        with _quiet():
            if library == "xgboost":
                import xgboost

                model: Any = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
            else:
                import lightgbm

                model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
        path = d / f"{library}.{how}"
        if how == "joblib":
            import joblib

            joblib.dump(model, path)
        else:
            _dump(model, path, 4)
        return path

    return build


def _hf_whole_model(kind: str) -> Callable[[Path], Path]:
    """torch.save of a whole transformers model (classes rebuilt by NEWOBJ + BUILD)."""

    def build(d: Path) -> Path:
        torch = _torch_seed()
        import transformers

        if kind == "bert":
            model = transformers.BertModel(
                transformers.BertConfig(
                    vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32,
                )
            )  # fmt: skip
        else:
            model = transformers.GPT2LMHeadModel(
                transformers.GPT2Config(
                    vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2
                )
            )
        path = d / "whole_model.pt"
        with _quiet():
            torch.save(model, path)
        return path

    return build


def _hf_rng_state(d: Path) -> Path:
    # What Trainer._save_rng_state writes (CPU only), rebuilt by hand for environments where
    # the full Trainer run is not wanted.
    torch = _torch_seed()
    import numpy as np

    path = d / "rng_state.pth"
    torch.save(
        {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "cpu": torch.random.get_rng_state(),
        },
        path,
    )
    return path


# --------------------------------------------------------------------------------------------
# scikit-learn


@functools.lru_cache(maxsize=1)
def _sklearn_data() -> tuple[Any, Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=60),
            "cat": rng.choice(["red", "green", "blue"], size=60),
            "count": rng.integers(0, 10, size=60),
        }
    )
    return x, y, frame


def _sk_logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y, _ = _sklearn_data()
    return LogisticRegression().fit(x, y)


def _sk_random_forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    x, y, _ = _sklearn_data()
    return RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, y)


def _sk_gradient_boosting() -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y, _ = _sklearn_data()
    return GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(x, y)


def _sk_hist_gradient_boosting() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    x, y, _ = _sklearn_data()
    return [
        HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(x, y),
        HistGradientBoostingRegressor(max_iter=3, loss="absolute_error").fit(x, x[:, 2]),
    ]


def _sk_svc() -> Any:
    from sklearn.svm import SVC, SVR, LinearSVC

    x, y, _ = _sklearn_data()
    return [
        SVC(probability=True, random_state=0).fit(x, y),
        SVR().fit(x, x[:, 0]),
        LinearSVC().fit(x, y),
    ]


def _sk_unsupervised() -> Any:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    x, _, _ = _sklearn_data()
    return [
        KMeans(n_clusters=2, n_init=1, random_state=0).fit(x),
        PCA(n_components=2).fit(x),
        IsolationForest(n_estimators=3, random_state=0).fit(x),
    ]


def _sk_preprocessing() -> Any:
    from sklearn.preprocessing import LabelEncoder, MinMaxScaler, OneHotEncoder, StandardScaler

    x, _, frame = _sklearn_data()
    return [
        StandardScaler().fit(x),
        MinMaxScaler().fit(x),
        OneHotEncoder(handle_unknown="ignore").fit(frame[["cat"]]),
        # String classes: an object ndarray inside the estimator.
        LabelEncoder().fit(["spam", "ham", "eggs", "ham"]),
    ]


def _sk_text() -> Any:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    docs = ["the cat sat", "the dog sat on the mat", "cats and dogs"]
    return [TfidfVectorizer(ngram_range=(1, 2)).fit(docs), CountVectorizer().fit(docs)]


def _sk_pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    _, y, frame = _sklearn_data()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["num", "count"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
        ],
        remainder="drop",
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, y)


def _sk_mlp_tree_knn() -> Any:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y, _ = _sklearn_data()
    return [
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(x, y),
        DecisionTreeClassifier(max_depth=3).fit(x, y),
        KNeighborsClassifier(n_neighbors=3).fit(x, y),
        KNeighborsClassifier(n_neighbors=3, algorithm="ball_tree").fit(x, y),
    ]


def _sk_grid_search() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    x, y, _ = _sklearn_data()
    return GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2, scoring="accuracy").fit(x, y)


def _sk_grid_search_default() -> Any:
    from sklearn.model_selection import GridSearchCV
    from sklearn.tree import DecisionTreeClassifier

    x, y, _ = _sklearn_data()
    return GridSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2]}, cv=2).fit(x, y)


def _sk_function_params() -> Any:
    # Estimators whose parameters or fitted state hold functions (pickled as globals).
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.cluster import FeatureAgglomeration
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LinearRegression, SGDClassifier
    from sklearn.preprocessing import FunctionTransformer, SplineTransformer

    x, y, _ = _sklearn_data()
    pos = np.abs(x) + 0.1
    return [
        FunctionTransformer(np.log1p, inverse_func=np.expm1).fit(pos),
        TransformedTargetRegressor(LinearRegression(), func=np.log, inverse_func=np.exp).fit(
            x, pos[:, 0]
        ),
        SelectKBest(f_classif, k=2).fit(x, y),
        FeatureAgglomeration(n_clusters=2).fit(x),
        SGDClassifier(max_iter=5, tol=None, random_state=0).fit(x, y),
        CalibratedClassifierCV(SGDClassifier(max_iter=5, tol=None), cv=2).fit(x, y),
        SplineTransformer(n_knots=3).fit(x),
    ]


def _sk_sparse_input() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import SVC

    docs = ["the cat sat", "the dog sat on the mat", "cats and dogs", "a mat"] * 3
    vec = TfidfVectorizer().fit(docs)
    matrix = vec.transform(docs)
    # SVC fitted on sparse input keeps its support vectors as a scipy.sparse matrix.
    return {"vectorizer": vec, "X": matrix, "svc": SVC().fit(matrix, [0, 1] * 6)}


def _sk_randomized_search_scipy_stats(d: Path) -> Path:
    # A common, benign artifact that a scanner must still not wave through: scipy.stats
    # distribution objects (param_distributions) run exec() on a template string from their
    # pickled state in __setstate__, and their methods are pickled as getattr(dist, name)
    # wrapped in numpy.vectorize. None of these are allowlisted.
    import scipy.stats as st
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RandomizedSearchCV

    x, y, _ = _sklearn_data()
    search = RandomizedSearchCV(
        LogisticRegression(),
        {"C": st.loguniform(1e-3, 1e2), "max_iter": st.randint(50, 200)},
        n_iter=2,
        cv=2,
        random_state=0,
    ).fit(x, y)
    return _dump(search, d / "randomized_search.pkl", 4)


_SKLEARN_MODELS: dict[str, Callable[[], Any]] = {
    "logreg": _sk_logreg,
    "random-forest": _sk_random_forest,
    "gradient-boosting": _sk_gradient_boosting,
    "hist-gradient-boosting": _sk_hist_gradient_boosting,
    "svm": _sk_svc,
    "unsupervised": _sk_unsupervised,
    "preprocessing": _sk_preprocessing,
    "text": _sk_text,
    "pipeline": _sk_pipeline,
    "mlp-tree-knn": _sk_mlp_tree_knn,
    "grid-search": _sk_grid_search,
    "grid-search-default": _sk_grid_search_default,
    "function-params": _sk_function_params,
    "sparse-input": _sk_sparse_input,
}


@functools.cache
def _sk_model(name: str) -> Any:
    return _SKLEARN_MODELS[name]()


def _sk_pickle(name: str, protocol: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        return _dump(_sk_model(name), d / f"{name}.p{protocol}.pkl", protocol)

    return build


def _sk_joblib(name: str, compress: Any, suffix: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import joblib

        path = d / f"{name}.{suffix}.joblib"
        joblib.dump(_sk_model(name), path, compress=compress)
        return path

    return build


_JOBLIB_COMPRESSIONS: list[tuple[str, Any]] = [
    ("raw", 0),
    ("zlib", 3),
    ("gzip", ("gzip", 3)),
    ("bz2", ("bz2", 3)),
    ("xz", ("xz", 3)),
    ("lzma", ("lzma", 3)),
]


# --------------------------------------------------------------------------------------------
# numpy


def _np_npy(kind: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import numpy as np

        arrays: dict[str, Callable[[], Any]] = {
            "float": lambda: np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
            "int": lambda: np.arange(10, dtype=np.int64),
            "fortran": lambda: np.asfortranarray(np.ones((3, 2))),
            "structured": lambda: np.array(
                [(1, 2.0, b"ab"), (3, 4.0, b"cd")], dtype=[("a", "<i4"), ("b", "<f8"), ("c", "S2")]
            ),
            "datetime64": lambda: np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
            "unicode": lambda: np.array(["alpha", "beta"]),
            # Object arrays are stored as a pickle after the .npy header.
            "object-strings": lambda: np.array(["spam", "ham", None], dtype=object),
        }
        path = d / f"{kind}.npy"
        np.save(path, arrays[kind](), allow_pickle=kind.startswith("object"))
        return path

    return build


def _np_npz(compressed: bool) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import numpy as np

        save = np.savez_compressed if compressed else np.savez
        path = d / ("arrays_compressed.npz" if compressed else "arrays.npz")
        save(
            path,
            w=np.ones((2, 2)),
            idx=np.arange(3),
            labels=np.array(["a", "b"], dtype=object),
        )
        return path

    return build


def _np_pickled(protocol: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import numpy as np

        obj = {
            "f32": np.arange(4, dtype=np.float32),
            "c128": np.array([1 + 2j]),
            "bool": np.array([True, False]),
            "matrix_like_2d": np.eye(2),
            "structured": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i2")]),
            "dt": np.array(["2024-01-01T00:00"], dtype="datetime64[m]"),
            "td": np.array([5], dtype="timedelta64[s]"),
            "objects": np.array(["x", 1, None], dtype=object),
            "masked": np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False]),
            "masked_constant": np.ma.masked,
            "recarray": np.rec.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
            "matrix": np.asmatrix(np.eye(2)),
            "scalars": [
                np.float16(1),
                np.float32(1),
                np.float64(1),
                np.longdouble(1),
                np.int8(1),
                np.int16(1),
                np.int32(1),
                np.int64(1),
                np.uint8(1),
                np.uint64(1),
                np.bool_(True),
                np.complex64(1j),
                np.str_("s"),
                np.bytes_(b"b"),
                np.datetime64("2024-01-01"),
                np.timedelta64(3, "h"),
            ],
            "dtypes": [np.dtype("f8"), np.dtype(">i4"), np.dtype([("a", "u1")]), np.float64],
            "generator": np.random.default_rng(0),
            "generators": [np.random.Generator(np.random.PCG64DXSM(1)), np.random.SFC64(2)],
            "philox": np.random.Philox(3),
            "mt": np.random.MT19937(4),
            "random_state": np.random.RandomState(0),
            "seed_sequence": np.random.SeedSequence(5),
        }
        if hasattr(np.dtypes, "StringDType"):  # numpy >= 2.0
            obj["vstring"] = np.array(["a", "bb"], dtype=np.dtypes.StringDType())
        return _dump(obj, d / f"numpy_objects.p{protocol}.pkl", protocol)

    return build


def _scipy_sparse(d: Path) -> Path:
    import numpy as np
    import scipy.sparse as sp

    dense = np.array([[0.0, 1.0], [2.0, 0.0]])
    obj = {
        "matrices": [
            sp.csr_matrix(dense),
            sp.csc_matrix(dense),
            sp.coo_matrix(dense),
            sp.bsr_matrix(dense),
            sp.dia_matrix(dense),
            sp.lil_matrix(dense),
            sp.dok_matrix(dense),
        ],
        "arrays": [sp.csr_array(dense), sp.csc_array(dense), sp.coo_array(dense)],
    }
    return _dump(obj, d / "scipy_sparse.pkl", 4)


# --------------------------------------------------------------------------------------------
# pandas


def _pd_frame() -> Any:
    import numpy as np
    import pandas as pd

    n = 4
    return pd.DataFrame(
        {
            "int": np.arange(n),
            "float": np.linspace(0, 1, n),
            "object": ["a", 1, None, 2.5],
            "string": pd.array(["w", "x", None, "z"], dtype="string"),
            "str_default": ["p", "q", "r", "s"],
            "category": pd.Categorical(["a", "b", "a", "c"]),
            "ordered": pd.Categorical(
                ["lo", "hi", "lo", "hi"], categories=["lo", "hi"], ordered=True
            ),
            "dt": pd.date_range("2024-01-01", periods=n, freq="D"),
            "dt_utc": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "td": pd.to_timedelta(np.arange(n), unit="s"),
            "period": pd.period_range("2024-01", periods=n, freq="M"),
            "interval": pd.interval_range(0, n),
            "sparse": pd.arrays.SparseArray([0, 0, 1, 0]),
            "Int64": pd.array([1, None, 3, 4], dtype="Int64"),
            "boolean": pd.array([True, None, False, True], dtype="boolean"),
            "Float64": pd.array([0.5, None, 1.5, 2.0], dtype="Float64"),
            "bool": [True, False, True, False],
        },
        index=pd.RangeIndex(10, 10 + n, name="row"),
    )


def _pd_indexes() -> Any:
    import pandas as pd

    mi = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["letter", "num"])
    return {
        "multi": pd.Series(range(4), index=mi, name="s"),
        "dt_index": pd.Series([1.0, 2.0], index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"])),
        "cat_index": pd.Series([1, 2], index=pd.CategoricalIndex(["x", "y"])),
        "interval_index": pd.Series([1, 2], index=pd.IntervalIndex.from_breaks([0, 1, 2])),
        "period_index": pd.Series([1, 2], index=pd.period_range("2024Q1", periods=2, freq="Q")),
        "td_index": pd.Series([1, 2], index=pd.to_timedelta([1, 2], unit="D")),
        "timestamp": pd.Timestamp("2024-03-01 12:00", tz="UTC"),
        "nat": pd.NaT,
        "na": pd.NA,
        "timedelta": pd.Timedelta("1h"),
        "period": pd.Period("2024-03", freq="M"),
        "interval": pd.Interval(0, 1, closed="left"),
        "offsets": [
            pd.offsets.MonthEnd(2),
            pd.offsets.Day(),
            pd.offsets.Hour(3),
            pd.offsets.BusinessDay(),
            pd.offsets.Week(weekday=0),
            pd.offsets.QuarterEnd(),
            pd.offsets.YearBegin(),
            pd.DateOffset(months=1),
        ],
    }


def _pd_to_pickle(obj: Callable[[], Any], name: str) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        import pandas as pd

        path = d / f"{name}.pkl"
        pd.to_pickle(obj(), path)
        return path

    return build


def _pd_pickle(obj: Callable[[], Any], name: str, protocol: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        return _dump(obj(), d / f"{name}.p{protocol}.pkl", protocol)

    return build


def _pd_tz_named(d: Path) -> Path:
    import pandas as pd

    frame = pd.DataFrame(
        {"ts": pd.date_range("2024-01-01", periods=3, freq="D", tz="Europe/Berlin")}
    )
    path = d / "frame_tz_zoneinfo.pkl"
    pd.to_pickle(frame, path)
    return path


# --------------------------------------------------------------------------------------------
# stdlib pickles


def _stdlib_values() -> dict[str, Any]:
    dd = collections.defaultdict(list)
    dd["a"].append(1)
    return {
        "dict": {"k": 1},
        "list": [1, 2.5, "x"],
        "tuple": (1, (2, 3)),
        "set": {1, 2},
        "frozenset": frozenset({"a"}),
        "bytearray": bytearray(b"\x00\xff"),
        "bytes": b"\x00\x01raw",
        "empty_bytes": b"",
        "str": "unicode \u2713",
        "complex": 1 + 2j,
        "big_int": 2**100,
        "float": float("inf"),
        "ordered": collections.OrderedDict(a=1, b=2),
        "defaultdict": dd,
        "defaultdict_int": collections.defaultdict(int, {"n": 1}),
        "counter": collections.Counter("hello"),
        "deque": collections.deque([1, 2], maxlen=5),
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6),
        "datetime_tz": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
        "date": datetime.date(2024, 1, 2),
        "time": datetime.time(12, 30),
        "timedelta": datetime.timedelta(days=1, seconds=2),
        "timezone": datetime.timezone(datetime.timedelta(hours=2), "CEST"),
        "decimal": decimal.Decimal("1.10"),
        "fraction": fractions.Fraction(1, 3),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "pure_path": pathlib.PurePosixPath("models/weights.bin"),
        "path": pathlib.PosixPath("/data/models"),
        "windows_path": pathlib.PureWindowsPath("C:/models"),
        "range": range(0, 10, 2),
        "slice": slice(1, None, 2),
        "ellipsis": ...,
        "namespace": argparse.Namespace(lr=0.1, epochs=3, name="run"),
        "regex_flag": re.IGNORECASE,
        "none": None,
        "bools": (True, False),
    }


def _stdlib(protocol: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        return _dump(_stdlib_values(), d / f"stdlib.p{protocol}.pkl", protocol)

    return build


def _main_types(protocol: int) -> Callable[[Path], Path]:
    def build(d: Path) -> Path:
        Point = collections.namedtuple("Point", "x y")

        class Colour(enum.Enum):
            RED = 1
            GREEN = 2

        @dataclass
        class Config:
            lr: float = 0.1

        class Plain:
            def __init__(self) -> None:
                self.value = 1

        Colour.__qualname__ = "Colour"
        Config.__qualname__ = "Config"
        Plain.__qualname__ = "Plain"
        with _as_main(Point, Colour, Config, Plain):
            data = pickle.dumps(
                {"point": Point(1, 2), "colour": Colour.GREEN, "cfg": Config(), "plain": Plain()},
                protocol=protocol,
            )
        path = d / f"main_types.p{protocol}.pkl"
        path.write_bytes(data)
        return path

    return build


def _simple_namespace(d: Path) -> Path:
    # types.SimpleNamespace is an inert attribute bag; it is the one exact entry from the types
    # module (FunctionType and CodeType stay critical).
    return _dump(types.SimpleNamespace(lr=0.1, epochs=3), d / "simple_namespace.pkl", 4)


def _regex_pattern(d: Path) -> Path:
    # Compiled patterns pickle as re._compile(pattern, flags): not allowlisted, since compiling
    # costs unbounded CPU and the DEBUG flag prints to stdout. ML artifacts store pattern strings.
    return _dump({"pattern": re.compile(r"\w+", re.I)}, d / "regex_pattern.pkl", 4)


# --------------------------------------------------------------------------------------------
# dill and cloudpickle (plain data only: no functions or classes)


def _plain_data() -> dict[str, Any]:
    import numpy as np

    return {
        "weights": np.arange(6.0).reshape(2, 3),
        "labels": ["a", "b"],
        "meta": collections.OrderedDict(version=2, created=datetime.date(2024, 1, 1)),
        "counts": collections.Counter("abca"),
        "set": {1, 2},
        "none": None,
    }


def _builtin_data() -> dict[str, Any]:
    return {
        "labels": ["a", "b"],
        "meta": collections.OrderedDict(version=2, created=datetime.date(2024, 1, 1)),
        "counts": collections.Counter("abca"),
        "set": {1, 2},
        "pair": (1.5, b"raw"),
        "none": None,
    }


def _dill_dump(d: Path) -> Path:
    import dill

    path = d / "data.dill"
    path.write_bytes(dill.dumps(_builtin_data()))
    return path


def _dill_numpy(d: Path) -> Path:
    # dill pickles ndarrays through its own dill._dill._create_array(f, args, state, npdict),
    # which calls f(*args); it is allowlisted because f is itself a global judged on its own.
    import dill

    path = d / "arrays.dill"
    path.write_bytes(dill.dumps(_plain_data()))
    return path


def _cloudpickle_dump(d: Path) -> Path:
    import cloudpickle

    path = d / "data.cloudpickle.pkl"
    path.write_bytes(cloudpickle.dumps(_plain_data()))
    return path


# --------------------------------------------------------------------------------------------
# registry


def _registry() -> tuple[BenignSample, ...]:
    t = ("torch",)
    samples: list[BenignSample] = [
        BenignSample("torch-state-dict-dtypes", "torch", _torch_dtypes_state_dict, requires=t),
        BenignSample("torch-state-dict-layouts", "torch", _torch_layouts_state_dict, requires=t),
        BenignSample("torch-nested-tensor", "torch", _torch_nested_tensor, requires=t),
        BenignSample("torch-tensor-attributes", "torch", _torch_tensor_with_attrs, requires=t),
        BenignSample("torch-python-values", "torch", _torch_python_values, requires=t),
        BenignSample("torch-metadata-objects", "torch", _torch_metadata_objects, requires=t),
        BenignSample("torch-memory-formats-p4", "torch", _torch_memory_formats_p4, requires=t),
        BenignSample(
            "torch-numpy-inside", "torch", _torch_numpy_inside, requires=("torch", "numpy")
        ),
        BenignSample(
            "torch-state-dict-plain-pickle",
            "torch",
            _torch_plain_pickle,
            may_be_suspicious=True,
            requires=t,
            unlisted=frozenset({"torch.storage:_load_from_bytes"}),
        ),
        BenignSample("torch-legacy-state-dict", "torch", _torch_legacy, requires=t),
        BenignSample("torch-legacy-model", "torch", _torch_legacy_model, requires=t),
        BenignSample(
            "torch-quantized-dynamic-state-dict",
            "torch",
            _torch_quantized_model_state_dict,
            requires=t,
        ),
        BenignSample("torch-model-mlp", "torch", _torch_model_mlp, requires=t),
        BenignSample("torch-model-cnn", "torch", _torch_model_cnn, requires=t),
        BenignSample("torch-model-rnn", "torch", _torch_model_rnn, requires=t),
        BenignSample("torch-model-transformer", "torch", _torch_model_transformer, requires=t),
        BenignSample("torch-model-containers", "torch", _torch_model_containers, requires=t),
        BenignSample("torch-model-weight-norm", "torch", _torch_model_weight_norm, requires=t),
        BenignSample("torch-model-quantized-dynamic", "torch", _torch_quantized_whole, requires=t),
        *(
            BenignSample(f"{lib}-classifier-{how}", lib, _boosting(lib, how), requires=(lib,))
            for lib in ("xgboost", "lightgbm")
            for how in ("pkl", "joblib")
        ),
        BenignSample(
            "torch-model-main-class",
            "torch",
            _torch_model_main_class,
            may_be_suspicious=True,
            requires=t,
        ),
        BenignSample("torch-optimizer-state-dicts", "torch", _optimizer_state_dicts, requires=t),
        BenignSample("torch-optimizer-objects", "torch", _optimizer_objects, requires=t),
        BenignSample("torch-scheduler-state-dicts", "torch", _scheduler_state_dicts, requires=t),
        BenignSample("torch-scheduler-object", "torch", _scheduler_object, requires=t),
    ]

    hf = ("torch", "transformers", "accelerate")
    samples += [
        BenignSample(f"hf-trainer-{name}", "transformers", _trainer_file(name), requires=hf)
        for name in ("training_args.bin", "rng_state.pth", "scheduler.pt", "optimizer.pt")
    ]
    samples += [
        BenignSample(
            "hf-training-args-fresh", "transformers", _hf_training_args_unused, requires=hf
        ),
        BenignSample("hf-seq2seq-training-args", "transformers", _hf_seq2seq_args, requires=hf),
        BenignSample(
            "hf-scheduler-object",
            "transformers",
            _hf_scheduler_object,
            may_be_suspicious=True,
            requires=hf,
            unlisted=frozenset(
                {
                    "functools:partial",
                    "transformers.optimization:_get_linear_schedule_with_warmup_lr_lambda",
                }
            ),
        ),
        BenignSample("hf-bert-pytorch-model-bin", "transformers", _hf_bert_state_dict, requires=hf),
        BenignSample("hf-gpt2-pytorch-model-bin", "transformers", _hf_gpt2_state_dict, requires=hf),
        BenignSample("hf-bert-whole-model", "transformers", _hf_whole_model("bert"), requires=hf),
        BenignSample("hf-gpt2-whole-model", "transformers", _hf_whole_model("gpt2"), requires=hf),
        BenignSample("hf-rng-state-manual", "torch", _hf_rng_state, requires=("torch", "numpy")),
    ]

    sk = ("sklearn", "numpy", "pandas")
    for name in _SKLEARN_MODELS:
        samples += [
            BenignSample(f"sklearn-{name}-p{p}", "sklearn", _sk_pickle(name, p), requires=sk)
            for p in (2, 3, 4, 5)
        ]
        samples += [
            BenignSample(
                f"sklearn-{name}-joblib-{suffix}",
                "joblib",
                _sk_joblib(name, compress, suffix),
                requires=(*sk, "joblib"),
            )
            for suffix, compress in _JOBLIB_COMPRESSIONS
        ]

    samples.append(
        BenignSample(
            "sklearn-randomized-search-scipy-stats",
            "sklearn",
            _sk_randomized_search_scipy_stats,
            may_be_suspicious=True,
            requires=("sklearn", "scipy", "numpy", "pandas"),
            # getattr(<distribution>, "_entropy") is judged by the scanner (an attribute of
            # an allowlisted instance), never allowlisted by name.
            unlisted=frozenset({"builtins:getattr"}),
        )
    )

    npy = ("numpy",)
    samples += [
        BenignSample(f"numpy-npy-{kind}", "numpy", _np_npy(kind), requires=npy)
        for kind in (
            "float",
            "int",
            "fortran",
            "structured",
            "datetime64",
            "unicode",
            "object-strings",
        )
    ]
    samples += [
        BenignSample("numpy-npz", "numpy", _np_npz(False), requires=npy),
        BenignSample("numpy-npz-compressed", "numpy", _np_npz(True), requires=npy),
    ]
    samples += [
        BenignSample(f"numpy-pickled-p{p}", "numpy", _np_pickled(p), requires=npy)
        for p in (2, 3, 4, 5)
    ]

    samples.append(
        BenignSample("scipy-sparse-matrices", "scipy", _scipy_sparse, requires=("scipy", "numpy"))
    )

    pdr = ("pandas", "numpy")
    samples += [
        BenignSample(
            "pandas-frame-to-pickle", "pandas", _pd_to_pickle(_pd_frame, "frame"), requires=pdr
        ),
        BenignSample(
            "pandas-indexes-to-pickle",
            "pandas",
            _pd_to_pickle(_pd_indexes, "indexes"),
            requires=pdr,
        ),
    ]
    samples += [
        BenignSample(
            f"pandas-frame-p{p}", "pandas", _pd_pickle(_pd_frame, "frame", p), requires=pdr
        )
        for p in (2, 4)
    ]
    samples += [
        BenignSample(
            f"pandas-indexes-p{p}", "pandas", _pd_pickle(_pd_indexes, "indexes", p), requires=pdr
        )
        for p in (2, 4)
    ]
    samples += [
        # A named time zone is pickled by pandas 3 as getattr(zoneinfo.ZoneInfo, "_unpickle")
        # (key, 1): the class is allowlisted, getattr is left to the scanner's argument checks.
        # (pandas < 3 writes pytz._p(key, ...) instead, which is allowlisted.)
        BenignSample(
            "pandas-frame-tz-named",
            "pandas",
            _pd_tz_named,
            may_be_suspicious=True,
            requires=pdr,
            unlisted=frozenset({"builtins:getattr"}),
        ),
    ]

    samples += [BenignSample(f"stdlib-types-p{p}", "stdlib", _stdlib(p)) for p in range(6)]
    samples += [
        BenignSample(f"stdlib-main-types-p{p}", "stdlib", _main_types(p), may_be_suspicious=True)
        for p in (0, 2, 4)
    ]
    samples += [
        BenignSample("stdlib-simple-namespace", "stdlib", _simple_namespace),
        BenignSample(
            "stdlib-regex-pattern",
            "stdlib",
            _regex_pattern,
            may_be_suspicious=True,
            unlisted=frozenset({"re:_compile"}),
        ),
        BenignSample("dill-plain-data", "dill", _dill_dump, requires=("dill",)),
        BenignSample("dill-numpy-arrays", "dill", _dill_numpy, requires=("dill", "numpy")),
        BenignSample(
            "cloudpickle-plain-data",
            "cloudpickle",
            _cloudpickle_dump,
            requires=("cloudpickle", "numpy"),
        ),
    ]
    return tuple(dataclasses.replace(s, build=_quietly(s.build)) for s in samples)


SAMPLES: tuple[BenignSample, ...] = _registry()


def by_id(sample_id: str) -> BenignSample:
    """Return the sample called ``sample_id``; raises ``KeyError`` if there is none."""
    for sample in SAMPLES:
        if sample.id == sample_id:
            return sample
    raise KeyError(sample_id)
