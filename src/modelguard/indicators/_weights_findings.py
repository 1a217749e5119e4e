"""Findings of the tensor pass (MG501-MG506) built from its per-window counts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from modelguard.indicators._screen import FLOATS
from modelguard.indicators.stego import WindowStats
from modelguard.results import Finding, Location, Severity
from modelguard.rules import get_rule

if TYPE_CHECKING:
    from modelguard.indicators._screen import Win
    from modelguard.indicators.settings import IndicatorSettings
    from modelguard.indicators.tensors import TensorRef
    from modelguard.indicators.weights import TensorStats

__all__ = ["findings", "not_run"]

# Carved files reported per tensor.
_MAX_CARVED = 5
# Values a window needs for the LSB test alone to make a finding.
_LSB_MIN_VALUES = 4096


def _finding(rule_id: str, message: str, loc: Location, evidence: dict[str, str]) -> Finding:
    severity = get_rule(rule_id).severity or Severity.INFO
    return Finding(rule_id, severity, message, loc, tuple(evidence.items()))


def _location(display: str, ref: TensorRef, offset: int) -> Location:
    return Location(display, (f"<tensor {ref.name}>",), ref.offset + offset)


def _measured(st: TensorStats, settings: IndicatorSettings) -> dict[str, str]:
    mode = "full" if st.full else settings.mode
    return {"mode": mode, "bytes_read": str(st.bytes_read), "values_read": str(st.numel_read)}


def findings(
    refs: tuple[TensorRef, ...],
    results: dict[int, list[Win]],
    stats: list[TensorStats],
    display: str,
    settings: IndicatorSettings,
) -> list[Finding]:
    out: list[Finding] = []
    by_name = {st.name: st for st in stats}
    for index in sorted(results):
        ref, wins = refs[index], results[index]
        st = by_name[ref.name]
        out.extend(_value_findings(ref, wins, st, display, settings))
        out.extend(_bitplane_findings(ref, wins, st, display, settings))
    out.extend(_precision_findings(refs, results, by_name, display, settings))
    return out


def _value_findings(
    ref: TensorRef, wins: list[Win], st: TensorStats, display: str, s: IndicatorSettings
) -> list[Finding]:
    out: list[Finding] = []
    nonfinite = st.nan + st.posinf + st.neginf
    if nonfinite > s.nonfinite_max:
        first = next(w for w in wins if w.nan + w.posinf + w.neginf)
        ev = {"statistic": "nonfinite_count", "value": str(nonfinite)}
        ev |= {"nan": str(st.nan), "posinf": str(st.posinf), "neginf": str(st.neginf)}
        ev |= {"threshold": f"nonfinite_max={s.nonfinite_max}"}
        ev |= {"window": f"[{first.start}, {first.end})"} | _measured(st, s)
        msg = f"Tensor {ref.name} holds {nonfinite} NaN/Inf values."
        out.append(_finding("MG501", msg, _location(display, ref, first.start), ev))
    float_type = ref.dtype in FLOATS
    if st.constant:
        what = "all zeros" if st.zero == st.numel_read else f"constant (bits 0x{wins[0].first:x})"
        ev = {"statistic": "constant", "value": what} | _measured(st, s)
        msg = f"Tensor {ref.name} is {what} in the values read."
        out.append(_finding("MG502", msg, _location(display, ref, 0), ev))
    elif float_type and st.numel_read:
        share = st.subnormal / st.numel_read
        if share > s.subnormal_fraction_max:
            ev = {"statistic": "subnormal_share", "value": f"{share:.4g}"}
            ev |= {"threshold": f"subnormal_fraction_max={s.subnormal_fraction_max}"}
            ev |= _measured(st, s)
            msg = f"Tensor {ref.name} has {share:.1%} subnormal values."
            out.append(_finding("MG502", msg, _location(display, ref, 0), ev))
    return out


def _bitplane_findings(
    ref: TensorRef, wins: list[Win], st: TensorStats, display: str, s: IndicatorSettings
) -> list[Finding]:
    out: list[Finding] = []
    bad: list[WindowStats] = []
    for w in wins:
        ws = w.stats
        if ws is None or math.isnan(ws.chi2):
            continue
        limit = s.chi2_window * ws.chi2_dof / 255
        effect = (ws.chi2 - ws.chi2_dof) / ws.kept if ws.kept else 0.0
        # the LSB test alone needs enough values: a few hundred values computed in float32
        # arithmetic (a freshly trained bias) carry rounding structure in their last bit
        lsb = abs(ws.lsb_z) > s.lsb_z_max and ws.kept >= _LSB_MIN_VALUES
        if (ws.chi2 > limit and effect >= s.chi2_effect_min) or lsb:
            bad.append(ws)
    if bad:
        worst = max(bad, key=lambda ws: ws.chi2)
        limit = s.chi2_window * worst.chi2_dof / 255
        ev = {
            "statistic": "chi2_low_byte",
            "value": f"{worst.chi2:.1f}",
            "threshold": f"chi2_window={s.chi2_window} (dof {worst.chi2_dof}: {limit:.1f}), "
            f"chi2_effect_min={s.chi2_effect_min}",
            "effect": f"{(worst.chi2 - worst.chi2_dof) / max(worst.kept, 1):.3f}",
            "lsb_z": f"{worst.lsb_z:.2f}",
            "lsb_threshold": f"lsb_z_max={s.lsb_z_max}",
            "mantissa_top_share": f"{worst.mantissa_top:.3f}",
            "screen_z": f"{worst.screen_z:.2f}",
            "window": f"[{worst.start}, {worst.end})",
            "window_reason": worst.reason,
            "windows_flagged": str(len(bad)),
        } | _measured(st, s)
        msg = (
            f"Low-order bits of tensor {ref.name} are not distributed like trained weights "
            f"in {len(bad)} window(s)."
        )
        out.append(_finding("MG504", msg, _location(display, ref, worst.start), ev))
    runs = [(w, run) for w in wins for run in w.runs]
    if runs and not bad:
        w, (offset, length, stream) = max(runs, key=lambda item: item[1][1])
        ev = {
            "statistic": "printable_run",
            "value": str(length),
            "threshold": f"printable_run_min={s.printable_run_min}",
            "stream": stream,
            "screen_z": f"{w.screen_z:.2f}",
            "window": f"[{w.start}, {w.end})",
            "runs": str(len(runs)),
        } | _measured(st, s)
        msg = (
            f"Low-order bits of tensor {ref.name} hold {length} consecutive printable "
            f"characters ({stream})."
        )
        out.append(_finding("MG504", msg, _location(display, ref, offset), ev))
    seen: set[tuple[int, str]] = set()
    for w in wins:
        for offset, hit in w.carved:
            if (offset, hit.kind) in seen or len(seen) >= _MAX_CARVED:
                continue
            seen.add((offset, hit.kind))
            ev = {"kind": hit.kind, "structure": hit.detail, "length": str(hit.length)}
            ev |= {"threshold": f"carve_min_bytes={s.carve_min_bytes}"}
            ev |= {"window": f"[{w.start}, {w.end})"} | _measured(st, s)
            msg = f"A {hit.kind.upper()} file is embedded in the weights of tensor {ref.name}."
            out.append(_finding("MG505", msg, _location(display, ref, offset), ev))
    return out


def _precision_findings(
    refs: tuple[TensorRef, ...],
    results: dict[int, list[Win]],
    by_name: dict[str, TensorStats],
    display: str,
    s: IndicatorSettings,
) -> list[Finding]:
    total = bf16 = 0
    for index, wins in results.items():
        if refs[index].dtype == "F32":
            for w in wins:
                total += w.n
                if w.n and w.low16_zero >= s.low16_zero_min * w.n:
                    bf16 += w.n
    if not total or bf16 < s.bf16_model_share * total:
        return []
    model_share = sum(by_name[refs[i].name].low16_zero for i in results) / total
    out: list[Finding] = []
    for index in sorted(results):
        ref, wins = refs[index], results[index]
        if ref.dtype != "F32":
            continue
        broken = [w for w in wins if w.n and w.low16_zero < s.low16_zero_min * w.n]
        if not broken:
            continue
        first = broken[0]
        share = first.low16_zero / first.n
        ev = {
            "statistic": "low16_zero_share",
            "value": f"{share:.4f}",
            "model_share": f"{model_share:.4f}",
            "threshold": f"low16_zero_min={s.low16_zero_min}",
            "window": f"[{first.start}, {first.end})",
            "windows_broken": str(len(broken)),
        } | _measured(by_name[ref.name], s)
        msg = (
            f"Tensor {ref.name} has set low 16 bits in {len(broken)} window(s) of a "
            "bfloat16-origin model."
        )
        out.append(_finding("MG503", msg, _location(display, ref, first.start), ev))
    return out


def not_run(
    display: str,
    skipped: tuple[tuple[str, str], ...],
    over: list[str],
    s: IndicatorSettings,
) -> list[Finding]:
    if not skipped and not over:
        return []
    items = [f"{name}: {reason}" for name, reason in skipped]
    items += [f"{name}: max_tensor_bytes_total={s.max_tensor_bytes_total} reached" for name in over]
    ev = {"tensors": "; ".join(items[:20]), "count": str(len(items))}
    msg = f"{len(items)} tensor(s) were not read by the tensor indicators."
    return [_finding("MG506", msg, Location(display), ev)]
