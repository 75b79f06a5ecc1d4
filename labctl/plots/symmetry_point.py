"""Symmetry-point figures: open-loop traces with the SP marked, figure-of-merit histograms,
step response with the fitted soft-bounds model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.plots.style import figure, run_is, save, title_note

#: seed 004 array means (devices.md section 1)
SEED_MEANS = {"n_states": 22.0, "sp_skew": 0.61, "nsr": 0.90}


def _arr(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def render(reader: Any, out_dir: Path) -> list[Path]:
    paths = []
    s = reader.summary
    if not s.get("per_device"):   # an unfinished run has no summary: from its records
        from labctl.protocols.symmetry_point import analyse_symmetry_point

        try:
            s = analyse_symmetry_point(reader)
        except (KeyError, ValueError, IndexError):   # stopped before the records it needs
            s = {}
    trace = reader.data("symmetry/trace_S")
    alt = reader.data("symmetry/alternating").astype(bool)
    per = s.get("per_device", {})
    g_sp = _arr(per.get("g_sp_S", []))
    n_show = min(trace.shape[1], 4)

    fig, ax = figure(width_in=8.0)
    a = ax[0, 0]
    k = np.arange(trace.shape[0])
    for i in range(trace.shape[1]):
        a.plot(k, trace[:, i] * 1e6, color="0.8", lw=0.4)
    dashed = False
    for i in range(n_show):
        line = a.plot(k, trace[:, i] * 1e6, lw=0.7)[0]
        if i < g_sp.size and np.isfinite(g_sp[i]):
            a.axhline(g_sp[i] * 1e6, color=line.get_color(), ls="--", lw=0.8)
            dashed = True
    if alt.any() and np.flatnonzero(alt)[0] + 1 < k[-1]:   # an aborted run may stop before
        a.axvspan(np.flatnonzero(alt)[0] + 1, k[-1], color="C2", alpha=0.08,
                  label="alternating 1 up / 1 down")
        a.legend(loc="upper right", fontsize=8)
    a.set(xlabel="pulse", ylabel="G (uS)",
          title=f"Open-loop identical pulses, {trace.shape[1]} devices"
                f"{' (dashed: G_sp)' if dashed else ''}\n{title_note(reader)}")
    paths.append(save(fig, out_dir, "symmetry_traces"))

    fig, ax = figure(ncols=3, width_in=3.8)
    for a, key, lab in ((ax[0, 0], "n_states", "number of states"),
                        (ax[0, 1], "sp_skew", "SP skew"), (ax[0, 2], "nsr", "NSR")):
        x = _arr(per.get(key, []))
        x = x[np.isfinite(x)]
        if x.size:
            # ~sqrt(n) bins: 3 for a handful of devices, 40 for a large die
            a.hist(x, bins=int(np.clip(np.sqrt(x.size), 3, 40)), color="C0")
            a.axvline(x.mean(), color="k", label=f"mean {x.mean():.3g}")
        a.axvline(SEED_MEANS[key], color="C3", ls="--", label=f"seed 004 {SEED_MEANS[key]:g}")
        a.set(xlabel=lab, ylabel="devices")
        a.legend(fontsize=8)
    fig.suptitle("Figures of merit across the array")
    paths.append(save(fig, out_dir, "symmetry_histograms"))

    paths.append(_step_response(reader, s, trace, out_dir))
    return paths


def _step_response(reader: Any, s: dict[str, Any], trace: np.ndarray, out_dir: Path) -> Path:
    """Measured single-pulse steps of device 0 against G, with the fitted model."""
    from labctl.protocols.analysis.soft_bounds import ModelForm, mean_step

    sign = reader.data("symmetry/sign")[:trace.shape[0] - 1]   # the pulses the trace holds
    fit = s.get("fit", {})
    per = fit.get("per_device", {})
    form = ModelForm(**fit.get("form", {}))
    fig, ax = figure()
    a = ax[0, 0]
    g, d = trace[:-1, 0], np.diff(trace[:, 0])
    up = sign > 0
    for sel, lab in ((up, "up steps"), (~up, "down steps")):
        if sel.any():
            a.plot(g[sel] * 1e6, d[sel] * 1e6, ".", ms=2, alpha=0.4, label=lab)
    fitted = bool(per.get("dw_min")) and per["dw_min"][0] is not None
    if fitted:
        theta = np.array([per["g_min_S"][0], per["g_max_S"][0], np.log(per["dw_min"][0]),
                          per["asymmetry"][0], per["gamma_up"][0], per["gamma_down"][0]])
        gs = np.linspace(np.nanmin(g), np.nanmax(g), 200)
        for direction, col in ((True, "C0"), (False, "C1")):
            a.plot(gs * 1e6, mean_step(gs, np.full(gs.size, direction), theta, form) * 1e6,
                   color=col, lw=2)
    a.axhline(0, color="k", lw=0.5)
    a.set(xlabel="G before the pulse (uS)", ylabel="step (uS)",
          title="Device 0: steps and the fitted soft-bounds model" if fitted else
          f"Device 0: steps (no model fitted; {run_is(reader)})")
    if a.get_legend_handles_labels()[0]:
        a.legend(fontsize=8)
    return save(fig, out_dir, "symmetry_step_fit")
