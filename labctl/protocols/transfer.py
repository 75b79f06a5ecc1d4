"""Weight transfer: program a placed weight matrix onto the chip with program-verify.

The weights have already been mapped to device targets and placed on the array (see
:mod:`labctl.pipelines.weight_mapping` and :mod:`labctl.pipelines.tiling`; the CLI hands
the result in as a :class:`TransferPlan`).  Each load (what the array holds at once) is
programmed with the identical-pulse closed loop of
:mod:`labctl.protocols.program_verify` (seed 004, Falcone et al., arXiv 2502.04524), all
its cells in lock-step, i.e. in parallel wherever the backend allows.  A cell gets no pulse
after it converged; the loop state lives in the protocol state, so a killed transfer
resumes without touching finished cells.

Run-file layout: ``transfer/weights`` (the matrix as given), ``transfer/targets_S`` (the
device matrix), ``transfer/load<k>/...`` (per-cell results of program-verify: row, col,
target_S, g_S, pulses, converged, rounds), ``transfer/load_end_s`` (the array clock when
each load finished: relaxation is counted from there).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from labctl.array import Array, Cells
from labctl.errors import ConfigError
from labctl.protocols.base import BaseProtocol, RunData, Step
from labctl.protocols.forming import FormingConfig
from labctl.protocols.program_verify import VerifyConfig, verify_steps
from labctl.protocols.unformed import form_cells_at, unformed_among

GROUP = "transfer"


@dataclass(frozen=True)
class TransferConfig:
    """What the run file records about a transfer (the plan itself is data, not config)."""

    weights_source: str
    weights_sha256: str
    weights_shape: tuple[int, int]
    mapping: dict[str, Any]
    placement: dict[str, Any]
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    #: form the cells of a load that read as unformed (below ``unformed_fraction * g_min``)
    form: bool = True
    unformed_fraction: float = 0.1          # [C] a fresh cell leaks ~1 nS, 1e-4 of g_min
    forming: FormingConfig = field(default_factory=FormingConfig)
    chunk_cells: int = 8192                 # cells per forming sweep call (bounds memory)
    #: cells that did not converge get up to this many fresh program-verify attempts (a new
    #: reset to HRS, then the closed loop again); converged cells are never touched again [C]
    retries: int = 2

    def validate(self) -> None:
        self.verify.validate()
        self.forming.validate()


@dataclass(frozen=True)
class TransferPlan:
    """Per load: the array cells and their targets (in the order they are programmed)."""

    weights: np.ndarray
    device_targets_S: np.ndarray
    loads: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    #: per load, array-shaped: the flat index of the weight each cell serves (-1: none) and
    #: the sign its conductance enters that weight with (recorded: the weight error)
    weight_maps: tuple[tuple[np.ndarray, np.ndarray], ...] = ()

    def __post_init__(self) -> None:
        for r, c, t in self.loads:
            if not (r.shape == c.shape == t.shape) or r.size == 0:
                raise ConfigError("a load of the transfer plan is empty or inconsistent",
                                  key="plan")

    @property
    def cells(self) -> int:
        return int(sum(r.size for r, _, _ in self.loads))


class Transfer(BaseProtocol):
    name: ClassVar[str] = "transfer"

    def __init__(self, config: TransferConfig, plan: TransferPlan) -> None:
        config.validate()
        super().__init__(config)
        self.plan = plan
        if len(plan.loads) != int(config.placement.get("loads", len(plan.loads))):
            raise ConfigError("the plan's loads do not match the placement", key="plan")

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)

    def preflight(self, array: Array) -> None:
        self.config.verify.check_array(array.info)
        if self.config.form and array.info.technology == "1t1r-reram":
            # cells that read as unformed get the forming ramp
            self.config.forming.check_limits(array.info.limits, before="labctl program")

    def initial_state(self, array: Array) -> dict[str, Any]:
        for r, c, _ in self.plan.loads:
            Cells.at(r, c).indices(array.info.shape)  # IndexError now, not mid-run
        return {"load": 0, "pv": {}, "started": False, "formed": False, "retry": 0,
                "retry_idx": np.zeros(0, dtype=np.int64)}

    def steps(self, array: Array, state: dict[str, Any]) -> Iterator[Step]:
        cfg: TransferConfig = self.config
        total = self.plan.cells
        before = sum(r.size for r, _, _ in self.plan.loads[:int(state["load"])])
        while int(state["load"]) < len(self.plan.loads):
            k = int(state["load"])
            r, c, t = self.plan.loads[k]
            first_write = self._first_write() if not state["started"] else {}
            state["started"] = True
            if cfg.form and not state["formed"]:
                rec = form_cells(array, r, c, cfg, group=f"{GROUP}/load{k}/forming")
                state["formed"] = True
                yield Step(done=before, total=total, label=f"load {k + 1}: forming",
                           append=rec, write=first_write)
                first_write = {}
            while True:
                j = int(state["retry"])
                idx = np.arange(r.size) if j == 0 else np.asarray(state["retry_idx"])
                group = f"{GROUP}/load{k}" + (f"/retry{j}" if j else "")
                converged = None
                for step in verify_steps(array, Cells.at(r[idx], c[idx]), t[idx], cfg.verify,
                                         state["pv"], group=group):
                    step.write.update(first_write)
                    first_write = {}
                    if f"{group}/converged" in step.append:
                        converged = np.asarray(step.append[f"{group}/converged"][0], dtype=bool)
                        if j < cfg.retries and not converged.all():
                            state["retry"] = j + 1
                            state["retry_idx"] = idx[~converged]
                            state["pv"] = {}
                            converged = None
                    yield Step(done=before + (step.done if j == 0 else r.size - idx.size
                                              + step.done), total=total,
                               label=f"load {k + 1}/{len(self.plan.loads)}"
                               f"{f' retry {j}' if j else ''}: {step.label}",
                               append=step.append, write=step.write)
                if converged is not None or int(state["retry"]) == j:
                    break
            before += r.size
            state["load"] = k + 1
            state["pv"] = {}
            state["formed"] = False
            state["retry"] = 0
            state["retry_idx"] = np.zeros(0, dtype=np.int64)
            yield Step(done=before, total=total, label=f"load {k + 1} done", write=first_write,
                       append={f"{GROUP}/load_end_s": (np.array([array.now()]), "s")})

    def _first_write(self) -> dict[str, tuple[Any, str]]:
        rec = {f"{GROUP}/weights": (np.asarray(self.plan.weights, dtype=float), ""),
               f"{GROUP}/targets_S": (np.asarray(self.plan.device_targets_S), "S")}
        for k, (index, sign) in enumerate(self.plan.weight_maps):
            rec[f"{GROUP}/load{k}/weight_index"] = (np.asarray(index), "")
            rec[f"{GROUP}/load{k}/weight_sign"] = (np.asarray(sign), "")
        return rec

    def analyse(self, data: RunData) -> dict[str, Any]:
        return analyse_transfer(data)


def form_cells(array: Array, r: np.ndarray, c: np.ndarray, cfg: TransferConfig, *,
               group: str) -> dict[str, tuple[Any, str]]:
    """Electro-form the cells that read as unformed, as ``run forming`` does (seed 004).

    The forming ramp, the set-direction sweep and the conditioning cycles of
    :mod:`labctl.protocols.forming` on just those cells.  Returns the records to append:
    which cells were unformed and, for them, the forming voltage (NaN if the ramp did not
    form it).
    """
    todo = unformed_among(array, Cells.at(r, c), cfg.forming, cfg.unformed_fraction)
    ok, v = form_cells_at(array, r[todo], c[todo], cfg.forming, chunk_cells=cfg.chunk_cells)
    v_form = np.full(r.size, np.nan)
    v_form[todo] = np.where(ok, v, np.nan)
    was_unformed = np.zeros(r.size, dtype=bool)
    was_unformed[todo] = True
    return {f"{group}/unformed": (was_unformed, ""), f"{group}/v_form_V": (v_form, "V")}


def load_results(data: RunData, loads: int) -> dict[str, np.ndarray]:
    """Per-cell results of every finished load, retries merged (load index in ``load``).

    ``pulses`` counts every pulse a cell got over all attempts; ``g_S`` and ``converged``
    are those of its last attempt.
    """
    keys = ("row", "col", "target_S", "g_S", "pulses", "converged")
    out: dict[str, list[np.ndarray]] = {k: [] for k in (*keys, "load")}
    for k in range(loads):
        base = f"{GROUP}/load{k}"
        if f"{base}/g_S" not in data:
            continue
        res = {key: np.array(data.data(f"{base}/{key}")) for key in keys}
        pos = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(res["row"], res["col"],
                                                                   strict=True))}
        j = 1
        while f"{base}/retry{j}/g_S" in data:
            rr = {key: np.asarray(data.data(f"{base}/retry{j}/{key}")) for key in keys}
            at = np.array([pos[(int(a), int(b))] for a, b in zip(rr["row"], rr["col"],
                                                                   strict=True)], dtype=int)
            res["g_S"][at] = rr["g_S"]
            res["converged"][at] = rr["converged"]
            res["pulses"][at] += rr["pulses"]
            j += 1
        for key in keys:
            out[key].append(res[key])
        out["load"].append(np.full(res["row"].size, k))
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}


def analyse_transfer(data: RunData) -> dict[str, Any]:
    """Cells, pulses, convergence and programming error (in S and in weight units)."""
    cfg = data.config
    mapping = cfg["mapping"]
    loads = int(cfg["placement"]["loads"])
    res = load_results(data, loads)
    n = int(res["g_S"].size)
    if n == 0:
        return {"cells": 0, "pulses_mean": None, "converged": 0, "loads": loads}
    err = res["g_S"] - res["target_S"]
    conv = res["converged"].astype(bool)
    return {
        "cells": n,
        "loads": loads,
        "tiles": len(cfg["placement"]["tiles"]),
        "mapping": mapping["kind"],
        "tolerance": cfg["verify"]["tolerance"],
        "pulses_mean": float(np.mean(res["pulses"])),
        "pulses_max": int(np.max(res["pulses"])),
        "converged": int(conv.sum()),
        "converged_fraction": float(conv.mean()),
        "g_error_rms_S": float(np.sqrt(np.mean(err ** 2))),
        "weight_error_rms": _weight_error_rms(data, res, err, float(mapping["scale_S"])),
    }


def _weight_error_rms(data: RunData, res: dict[str, np.ndarray], err: np.ndarray,
                      scale_S: float) -> float | None:
    """RMS error of the programmed weights in units of w_max: each weight's devices' errors
    summed with their signs (a differential pair carries two), over ``scale_S``.  None for
    run files written before the weight maps were recorded."""
    if f"{GROUP}/load0/weight_index" not in data:
        return None
    n_w = int(np.prod(data.data(f"{GROUP}/weights").shape))
    total, touched = np.zeros(n_w), np.zeros(n_w, dtype=bool)
    for k in np.unique(res["load"]).astype(int):
        at = res["load"] == k
        r, c = res["row"][at].astype(int), res["col"][at].astype(int)
        index = data.data(f"{GROUP}/load{k}/weight_index")[r, c]
        sign = data.data(f"{GROUP}/load{k}/weight_sign")[r, c]
        ok = index >= 0
        np.add.at(total, index[ok], sign[ok] * err[at][ok])
        touched[index[ok]] = True
    return float(np.sqrt(np.mean(total[touched] ** 2)) / scale_S) if touched.any() else None
