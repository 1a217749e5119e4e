"""Settings of the poisoning-risk indicators: mode and thresholds (policy `[indicators]`).

Every threshold is a field here, so that a finding can name the threshold it crossed and a
policy file can change it::

    [indicators]
    mode = "full"              # sampled (default) | full
    chi2_window = 2000.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from modelguard.errors import ConfigError

__all__ = ["IndicatorSettings"]

_MiB = 1024 * 1024


def _finite(value: float) -> bool:
    """Return True if `value` is a finite float (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True, slots=True)
class IndicatorSettings:
    """Mode and thresholds of the indicators.

    Attributes:
        mode: `sampled` reads, per tensor, at most `sample_bytes` in evenly spaced windows
            (small tensors whole); `full` reads every byte of every tensor.
        sample_bytes: bytes read per tensor in sampled mode.
        window_bytes: bytes per statistics window (the unit a bit-plane finding points at).
        max_tensor_bytes_total: bytes read per file by the tensor pass (a limit, reported).
        nonfinite_max: NaN/Inf values tolerated in one tensor before MG501.
        subnormal_fraction_max: fraction of subnormal values tolerated in one float tensor.
        chi2_window: chi-square of a window's low-byte histogram against uniform (255 degrees
            of freedom; clean weights stay near 255) above which the window is flagged.
        chi2_effect_min: the chi-square must also exceed its degrees of freedom by this much
            per value ((chi2 - dof) / values): a large window of untrained weights (torch's
            normal_ draws carry mild low-bit structure, about 0.12) passes the chi2 bound on
            size alone, while a payload's low bytes score far higher (English text about 15).
        lsb_z_max: |z| of the count of set least-significant bits against 1/2 above which a
            window is flagged.
        low16_zero_min: fraction of fp32 values with zero low 16 bits that marks a tensor or
            window as bf16-origin (used for precision-consistency, MG503).
        carve_min_bytes: smallest carved file (after structure validation) that is reported.
        changed_rel_min: relative Frobenius change |dW|/|W| above which a tensor counts as
            changed in a diff.
        lowrank_energy_min: share of the delta's energy in its top `lowrank_rank_max`
            singular values above which a changed 2-D tensor's delta is low-rank.
        lowrank_rank_max: the rank up to which a delta is called low-rank.
        targeted_fraction_max: at most this share of tensors changed for a low-rank change to
            be reported as a targeted edit (MG510) rather than a broad update.
        embedding_rows_max: at most this many changed rows of an embedding or output matrix
            are reported as edited rows (MG512); more is a broad update.
        svd_memory_max_bytes: a changed matrix whose float32 delta is at most this size is
            decomposed in memory; larger ones are sketched by streaming row blocks.
        screen_block_bytes: bytes per block of the every-element screen (rounded down to a
            multiple of 2048): the smallest region whose bit counts are tested, so a payload
            of a few hundred bytes moves it.
        screen_z: |z| of a block's (or two adjacent blocks') screen-bit count against one
            half above which the block gets the exact tests (histogram, carving, printable
            runs). A trigger, not a finding: lower finds smaller payloads and costs time.
        sample_every: full mode also runs the histogram and the low-byte carver on every
            n-th window of each tensor (the first included) when no screen fires.
        wild_abs_min: a finite magnitude at or above which a float value is "wild" (raw bytes
            stored in place of values; trained weights stay far below): its block gets the
            exact tests. Capped at 2048 for float16.
        printable_run_min: consecutive printable characters (ASCII text) in a low-byte or
            raw stream of a flagged block that make an MG504 finding.
        grid_share_min: share of a window's values on one absolute grid from which it is of
            untrained (uniform-initialised) origin and the uniformity tests do not apply.
        bf16_model_share: share of a model's float32 values in bfloat16-origin windows from
            which the model counts as bfloat16-origin (MG503 compares against this pattern).
    """

    mode: str = "sampled"
    sample_bytes: int = 4 * _MiB
    window_bytes: int = 1 * _MiB
    max_tensor_bytes_total: int = 1 << 40
    nonfinite_max: int = 0
    subnormal_fraction_max: float = 0.01
    chi2_window: float = 1000.0
    chi2_effect_min: float = 0.3
    lsb_z_max: float = 8.0
    low16_zero_min: float = 0.99
    carve_min_bytes: int = 64
    changed_rel_min: float = 1e-6
    lowrank_energy_min: float = 0.9
    lowrank_rank_max: int = 8
    targeted_fraction_max: float = 0.1
    embedding_rows_max: int = 64
    svd_memory_max_bytes: int = 64 * _MiB
    screen_block_bytes: int = 4096
    screen_z: float = 4.5
    sample_every: int = 64
    wild_abs_min: float = 65536.0
    printable_run_min: int = 96
    grid_share_min: float = 0.99
    bf16_model_share: float = 0.5

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the setting names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], source: str = "policy") -> IndicatorSettings:
        """Return settings with the values of a policy `[indicators]` table applied.

        Raises:
            ConfigError: an unknown name, or a value of the wrong type or range (a threshold
                must be a finite number: nan and inf are refused).
        """
        settings = cls()
        changes: dict[str, Any] = {}
        for key, value in table.items():
            if key not in cls.names():
                raise ConfigError(
                    f"{source}: unknown [indicators] setting {key!r} "
                    f"(known: {', '.join(cls.names())})"
                )
            default = getattr(settings, key)
            if isinstance(default, str):
                if value not in ("sampled", "full"):
                    raise ConfigError(f"{source}: [indicators] mode must be sampled or full")
            elif isinstance(default, int) and not isinstance(default, bool):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"{source}: [indicators] {key} must be an integer >= 0")
            elif isinstance(default, float):
                if (
                    not isinstance(value, (int, float))
                    or isinstance(value, bool)
                    or not _finite(value)  # nan/inf would disable the check
                    or value < 0
                ):
                    raise ConfigError(f"{source}: [indicators] {key} must be a finite number >= 0")
                value = float(value)
            changes[key] = value
        return replace(settings, **changes)
