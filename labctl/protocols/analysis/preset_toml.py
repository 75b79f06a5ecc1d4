"""The fitted device model as simulator preset text (TOML), written without the backend.

Protocols never import the simulator, so the preset is produced as text: the base preset
(the file the simulator was built from, or the default ``cmo-hfox-1t1r`` one for a bench)
is copied line by line, its ``name``/``source`` and the fitted keys of its ``[pulse]``
table are replaced and marked ``# fitted: ...`` (or with their own comment: the pulse scheme
the fit was measured with, a spread the fit fixes by design); every other line, comment and
citation stays as it was.  Keys the base lacks are added at the end of the table.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: [pulse] keys the symmetry-point fit supplies (the population means and spreads)
FITTED_PULSE_KEYS = ("g_min_S", "g_max_S", "dw_min", "asymmetry", "gamma_up", "gamma_down",
                     "sigma_c2c", "g_min_d2d_S", "g_max_d2d_S", "dw_min_d2d_ln",
                     "asymmetry_d2d", "gamma_d2d", "sigma_c2c_d2d")
#: [pulse] keys that state the scheme the fit was measured with (drive 1 there)
SCHEME_KEYS = ("set_ref_V", "reset_ref_V", "width_ref_s")
#: [pulse] keys the fit sets by its design rather than from the data (soft_bounds.py)
FIXED_PULSE_KEYS = {"gamma_d2d": "not fitted: one trace per device does not pin its own "
                                 "exponent, so every device gets the array's (the devices' median "
                                 "less the fit's bias)"}

_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+)(\s*=\s*)([^#]*?)(\s*)(#.*)?$")
_TABLE = re.compile(r"^\s*\[([^\]]+)\]")


def toml_value(v: Any) -> str:
    """A TOML literal for a number or string."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write a non-finite value {v} to a preset")
        text = f"{v:.6g}"
        return text if any(ch in text for ch in ".en") else text + ".0"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def fitted_preset_text(base_text: str, *, name: str, source: str,
                       table_values: dict[str, dict[str, Any]], note: str,
                       key_notes: dict[str, str] | None = None) -> str:
    """``base_text`` with top-level name/source replaced and ``table_values`` substituted.

    ``table_values`` maps a table name (``"pulse"``) to ``{key: value}``; each replaced
    line keeps its key and gets the comment ``# fitted: <note>``, or ``# <key_notes[key]>``.
    """
    comments = {k: f"  # {v}" for k, v in (key_notes or {}).items()}
    default = f"  # fitted: {note}"
    top = {"name": name, "source": source}
    pending = {t: dict(v) for t, v in table_values.items()}
    out: list[str] = []
    table: str | None = None
    for line in base_text.splitlines():
        m_table = _TABLE.match(line)
        if m_table:
            _flush(out, pending, table, comments, default)
            table = m_table.group(1).strip()
            out.append(line)
            continue
        m = _KEY.match(line)
        values = top if table is None else pending.get(table, {})
        if m and m.group(2) in values:
            key = m.group(2)
            v = values.pop(key)
            comment = "" if table is None else comments.get(key, default)
            out.append(f"{m.group(1)}{key}{m.group(3)}{toml_value(v)}{comment}")
            continue
        out.append(line)
    _flush(out, pending, table, comments, default)
    for key, v in top.items():
        out.insert(0, f"{key} = {toml_value(v)}")
    for t, values in pending.items():
        if values:
            out.append("")
            out.append(f"[{t}]")
            out.extend(f"{k} = {toml_value(v)}{comments.get(k, default)}"
                       for k, v in values.items())
    return "\n".join(out).rstrip("\n") + "\n"


def _flush(out: list[str], pending: dict[str, dict[str, Any]], table: str | None,
           comments: dict[str, str], default: str) -> None:
    """Add the keys of ``table`` the base lacked, before the next table starts."""
    if table is None or not pending.get(table):
        return
    while out and not out[-1].strip():
        out.pop()
    out.extend(f"{k} = {toml_value(v)}{comments.get(k, default)}"
               for k, v in pending[table].items())
    out.append("")
    pending[table] = {}


def pulse_notes(run_name: str) -> dict[str, str]:
    """The comments of the [pulse] keys that are not fitted values (see :func:`pulse_table`)."""
    notes = {k: f"the pulse scheme of {run_name} (drive 1 at this setting)"
             for k in SCHEME_KEYS}
    notes.update(FIXED_PULSE_KEYS)
    return notes


def pulse_table(population: dict[str, Any], scheme: dict[str, Any]) -> dict[str, Any]:
    """The [pulse] values of a symmetry-point fit (population means/spreads and the scheme)."""
    vals = {k: float(population[k]) for k in FITTED_PULSE_KEYS if k in population}
    vals.update({k: float(scheme[k]) for k in SCHEME_KEYS if k in scheme})
    return vals
