"""Named device presets: TOML files that pick a device model and give its cited parameters.

A preset is a TOML file with ``model = "<kind>"`` (the model class, looked up in
:data:`MODEL_REGISTRY`), ``name``, an ``[array]`` table with the default ``rows`` and
``cols``, and the model's own tables.  An optional ``[periphery]`` table gives the
peripheral circuit a training tile simulates around the array (``dac_bits``, ``adc_bits``,
``out_noise``, ``out_bound``; see :func:`preset_periphery`).  Built-in presets live in
``labctl/sim_backend/presets/<name>.toml`` (package data), beside variants shipped for the
training pipeline (:func:`shipped_presets`), which load by name too; any other ``.toml`` path is
loaded the same way, e.g. a preset fitted to measured data by
``labctl run symmetry-point --preset-out``.  Model classes are imported lazily, so a
model's module is only needed when a preset asks for it.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError, missing
from labctl.sim_backend.device_model import DeviceModel

PRESET_DIR = Path(__file__).with_name("presets")

#: the built-in presets (DESIGN.md); the first is the default chip
PRESET_NAMES: tuple[str, ...] = ("cmo-hfox-1t1r", "rram-40nm-random", "mos2-fefet-2t")
DEFAULT_PRESET = PRESET_NAMES[0]

#: model kind -> "module:Class"; imported only when a preset uses it
MODEL_REGISTRY: dict[str, str] = {
    "cmo-hfox": "labctl.sim_backend.models.cmo_hfox:CmoHfoxModel",
    "rram-random": "labctl.sim_backend.models.rram_random:RramRandomModel",
    "fefet-2t": "labctl.sim_backend.models.fefet_2t:Fefet2tModel",
}


def _is_path(name_or_path: str) -> bool:
    return name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path


def shipped_presets() -> tuple[str, ...]:
    """Every preset name installed with labctl: the built-ins first, then their variants
    (e.g. ``cmo-hfox-1t1r-symmetric``, ``powstep-gamma2``) in name order."""
    extra = sorted(p.stem for p in PRESET_DIR.glob("*.toml") if p.stem not in PRESET_NAMES)
    return PRESET_NAMES + tuple(extra)


def preset_path(name_or_path: str) -> Path:
    """The TOML file of a shipped preset name, or the given ``.toml`` path."""
    if _is_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"preset file {missing(path)}", key="preset")
        return path
    if name_or_path not in shipped_presets():
        raise ConfigError(f"unknown preset {name_or_path!r}; choose one of "
                          f"{', '.join(shipped_presets())} or give a preset .toml file",
                          key="preset")
    path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"preset {name_or_path!r} is not installed (missing {path.name})",
                          key="preset")
    return path


def preset_digest(path: str | Path) -> str:
    """SHA-256 of a preset file's bytes: a run records it, so a replay or resume can tell
    when the file at the recorded path has changed since."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_preset(name_or_path: str) -> dict[str, Any]:
    """Parse a preset into a dict; ConfigError for unknown names, unreadable or bad TOML."""
    path = preset_path(name_or_path)
    try:
        with path.open("rb") as fh:
            preset = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset file {path} is not valid TOML: {exc}", key="preset") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read preset file {path}: {exc.strerror}", key="preset") from exc
    kind = preset.get("model")
    if not isinstance(kind, str) or kind not in MODEL_REGISTRY:
        raise ConfigError(f"preset file {path}: 'model' must be one of "
                          f"{', '.join(MODEL_REGISTRY)} (got {kind!r})", key="model")
    preset.setdefault("name", path.stem)
    return preset


#: the keys a preset's ``[periphery]`` table may set, with their types
PERIPHERY_KEYS: dict[str, type] = {"dac_bits": int, "adc_bits": int, "out_noise": float,
                                   "out_bound": float}


def preset_periphery(name_or_path: str) -> dict[str, Any]:
    """The preset's ``[periphery]`` table (empty if it has none): the DAC/ADC resolution and
    output noise of the simulated chip's MVM periphery, which a training tile uses unless
    the command line says otherwise."""
    preset = load_preset(name_or_path)
    table = preset.get("periphery", {})
    if not isinstance(table, dict):
        raise ConfigError(f"preset {preset['name']}: [periphery] must be a table", key="periphery")
    out: dict[str, Any] = {}
    for key, value in table.items():
        kind = PERIPHERY_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"preset {preset['name']}: unknown [periphery] key {key!r}; "
                              f"choose from {', '.join(PERIPHERY_KEYS)}", key="periphery")
        if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
            raise ConfigError(f"preset {preset['name']}: [periphery] {key} must be "
                              f"{'an integer' if kind is int else 'a number'}", key="periphery")
        out[key] = kind(value)
    return out


def model_class(kind: str) -> Any:
    """Import the model class registered for ``kind``."""
    module_name, _, class_name = MODEL_REGISTRY[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"device model {kind!r} is not available ({exc.name} is missing)",
                          key="model") from exc
    return getattr(module, class_name)


def load_model(name_or_toml_path: str) -> DeviceModel:
    """Build the device model a preset name or preset file describes."""
    preset = load_preset(name_or_toml_path)
    cls = model_class(preset["model"])
    if "technology" in preset and preset["technology"] != cls.technology:
        # informational in the file, but a reader believes it: it must say what is simulated
        raise ConfigError(f"preset {name_or_toml_path}: technology {preset['technology']!r} is "
                          f"not what model {preset['model']!r} simulates ({cls.technology!r})",
                          key="technology")
    try:
        return cls.from_preset(preset, str(preset["name"]))  # type: ignore[no-any-return]
    except ConfigError as exc:
        if name_or_toml_path in str(exc):
            raise
        # the model's own check (e.g. "[pulse] needs ..."): say which preset (file) it is
        # about, not the name written inside a copied file
        text = str(exc).removeprefix(f"preset {preset['name']}: ")
        raise ConfigError(f"preset {name_or_toml_path}: {text}", key=exc.key) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"preset {preset['name']}: bad or missing parameter ({exc})",
                          key="preset") from exc


def default_shape(name_or_toml_path: str) -> tuple[int, int]:
    """The preset's default array size ``[array] rows, cols`` (8x4 for the seed chip)."""
    preset = load_preset(name_or_toml_path)
    table = preset.get("array", {})
    try:
        rows, cols = int(table["rows"]), int(table["cols"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"preset {name_or_toml_path}: [array] needs integer rows and cols",
                          key="array") from exc
    if rows <= 0 or cols <= 0:
        raise ConfigError(f"preset {name_or_toml_path}: [array] rows and cols must be positive",
                          key="array")
    return rows, cols
