"""Preset loading: names, files, errors, and that every parameter cites its source."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from labctl.errors import ConfigError
from labctl.sim_backend import presets
from labctl.sim_backend.models.cmo_hfox import CmoHfoxModel
from labctl.sim_backend.presets import PRESET_NAMES, default_shape, load_model, load_preset

CMO = presets.PRESET_DIR / "cmo-hfox-1t1r.toml"


def test_registry_names_and_default_preset() -> None:
    assert PRESET_NAMES[0] == "cmo-hfox-1t1r"
    assert set(PRESET_NAMES) == {"cmo-hfox-1t1r", "rram-40nm-random", "mos2-fefet-2t"}
    assert set(presets.MODEL_REGISTRY) == {"cmo-hfox", "rram-random", "fefet-2t"}
    for target in presets.MODEL_REGISTRY.values():
        assert re.fullmatch(r"labctl\.sim_backend\.models\.\w+:\w+", target)


def test_default_preset_loads_with_the_seed_chip_figures() -> None:
    m = load_model("cmo-hfox-1t1r")
    assert isinstance(m, CmoHfoxModel)
    assert default_shape("cmo-hfox-1t1r") == (8, 4)
    assert (m.g_min_S, m.g_max_S) == (8e-6, 90e-6)
    assert m.set_polarity == -1 and m.technology == "1t1r-reram"
    assert m.limits.max_voltage_V == 4.0


def test_preset_is_package_data() -> None:
    assert CMO.is_file() and CMO.parent.name == "presets"


def test_every_numeric_parameter_cites_its_source() -> None:
    for line in CMO.read_text().splitlines():
        if re.match(r"^\w+\s*=\s*[-+0-9.]", line):
            comment = line.partition("#")[2]
            assert re.search(r"\[[ABC]|placeholder", comment), line


def write(tmp_path: Path, text: str, name: str = "p.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_preset_from_a_toml_file_changes_the_model(tmp_path: Path) -> None:
    text = CMO.read_text().replace("rows = 8 ", "rows = 16 ").replace(
        "g_lrs_S = 88e-6 ", "g_lrs_S = 70e-6 ")
    path = write(tmp_path, text, "fitted.toml")
    assert default_shape(path) == (16, 4)
    assert load_model(path).sw.g_lrs_S == 70e-6


def test_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown preset") as err:
        load_model("cmo-hfox-2t2r")
    assert "powstep-gamma2-seed003" in str(err.value)  # the message lists every shipped name


def test_shipped_variants_load_by_name_in_every_command() -> None:
    names = presets.shipped_presets()
    assert names[:3] == PRESET_NAMES
    assert {"cmo-hfox-1t1r-symmetric", "powstep-gamma2", "powstep-gamma2-seed003"} <= set(names)
    assert len(names) == len(set(names)) == len(list(presets.PRESET_DIR.glob("*.toml")))
    for name in names:
        assert load_preset(name)["name"] == name
        assert default_shape(name)[0] > 0


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(str(tmp_path / "nope.toml"))


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_model(write(tmp_path, "model = 'cmo-hfox'\n[pulse\n"))


def test_unknown_model_kind_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'model' must be one of"):
        load_model(write(tmp_path, 'model = "memristor-9000"\n'))


def test_missing_table_unknown_key_and_bad_value_are_config_errors(tmp_path: Path) -> None:
    text = CMO.read_text()
    no_forming = re.sub(r"\[forming\].*?(?=\n\[)", "", text, flags=re.S)
    with pytest.raises(ConfigError, match=r"\[forming\]"):
        load_model(write(tmp_path, no_forming, "a.toml"))
    with pytest.raises(ConfigError, match="unknown key sweep.typo"):
        load_model(write(tmp_path, text.replace("[sweep]", "[sweep]\ntypo = 1"), "b.toml"))
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_model(write(tmp_path, text.replace("vth_V = 0.787", 'vth_V = "high"'), "c.toml"))
    negative = re.sub(r"(?m)^dw_min = [0-9.]+", "dw_min = -0.1", text, count=1)
    assert negative != text
    with pytest.raises(ConfigError, match="dw_min"):
        load_model(write(tmp_path, negative, "d.toml"))
    # physically impossible values: a window upside down, a dead transistor, a negative
    # forming voltage (its sign is the polarity)
    for old, new, words in (("g_min_S = 8e-6", "g_min_S = 900e-6", r"\[operating\] needs 0 <"),
                            ("k_A_per_V2 = 3.03e-3", "k_A_per_V2 = 0", "k_A_per_V2 must be > 0"),
                            ("v_form_mean_V = 3.38", "v_form_mean_V = -3.38", "v_form_mean_V")):
        assert old in text
        with pytest.raises(ConfigError, match=words):
            load_model(write(tmp_path, text.replace(old, new, 1), "e.toml"))


def test_load_preset_keeps_name_and_model() -> None:
    p = load_preset("cmo-hfox-1t1r")
    assert p["model"] == "cmo-hfox" and p["name"] == "cmo-hfox-1t1r"
    with CMO.open("rb") as fh:
        assert tomllib.load(fh)["pulse"] == p["pulse"]


def test_periphery_table_is_optional_and_checked(tmp_path: Path) -> None:
    """A preset may give the training tiles' periphery; a bad key or type is a clear error."""
    assert presets.preset_periphery("cmo-hfox-1t1r") == {}
    seed003 = presets.PRESET_DIR / "powstep-gamma2-seed003.toml"
    assert presets.preset_periphery(str(seed003)) == {"dac_bits": 0, "adc_bits": 0,
                                                      "out_noise": 0.0}
    good = write(tmp_path, CMO.read_text() + "\n[periphery]\nadc_bits = 8\nout_bound = 10\n")
    assert presets.preset_periphery(good) == {"adc_bits": 8, "out_bound": 10.0}
    for bad, words in (("adc_bit = 8", "unknown [periphery] key 'adc_bit'"),
                       ("adc_bits = 8.5", "adc_bits must be an integer"),
                       ("out_noise = 'low'", "out_noise must be a number")):
        path = write(tmp_path, CMO.read_text() + f"\n[periphery]\n{bad}\n", "bad.toml")
        with pytest.raises(ConfigError, match=re.escape(words)):
            presets.preset_periphery(path)


@pytest.mark.parametrize("table, key", [("pulse", "sigma_c2c"), ("relaxation", None),
                                        ("read_noise", "coefficient_S")])
def test_non_finite_values_in_any_table_are_refused(tmp_path: Path, table: str,
                                                    key: str | None) -> None:
    """A NaN in [pulse] loaded, and program-verify then 'succeeded' with no cell converged."""
    text = CMO.read_text()
    body = re.search(rf"(?ms)^\[{table}\][^\n]*\n(.*?)(?=^\[|\Z)", text)
    assert body is not None
    name = key or re.search(r"(?m)^(\w+) = ", body.group(1)).group(1)  # type: ignore[union-attr]
    bad = text.replace(body.group(0), re.sub(rf"(?m)^{name} = .*$", f"{name} = nan",
                                             body.group(0), count=1))
    assert bad != text
    with pytest.raises(ConfigError, match=rf"{table}\] {name} must be a finite number"):
        load_model(write(tmp_path, bad, f"{table}.toml"))


@pytest.mark.parametrize("old, new, words", [
    ("max_voltage_V = 4.0", "max_voltage_V = -4.0", "limits.max_voltage_V must be a finite "
                                                    "number > 0, got -4.0"),
    ("\ndw_min = 0.088", "\n", "[pulse] is missing dw_min"),
    ("\ndw_min = ", "\ndw_mni = 0.1\ndw_min = ", "unknown key pulse.dw_mni"),
    ('technology = "1t1r-reram"', 'technology = "fefet-2t"', "technology 'fefet-2t' is not "
                                                             "what model 'cmo-hfox' simulates "
                                                             "('1t1r-reram')"),
    ('technology = "1t1r-reram"', "technology = 5", "technology 5 is not what model "
                                                     "'cmo-hfox' simulates ('1t1r-reram')"),
])
def test_a_bad_preset_file_is_named_with_the_key_in_words(tmp_path: Path, old: str, new: str,
                                                          words: str) -> None:
    """The copied file's path, not the name written inside it; the key, not a Python
    signature; a negative limit refused, not every voltage 'exceeding' it later."""
    text = (presets.PRESET_DIR / "cmo-hfox-1t1r.toml").read_text()
    assert old in text
    path = tmp_path / "mine.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_model(str(path))
    assert str(err.value) == f"preset {path}: {words}"


def test_a_bad_array_size_names_the_preset_file(tmp_path: Path) -> None:
    text = (presets.PRESET_DIR / "cmo-hfox-1t1r.toml").read_text()
    path = tmp_path / "mine.toml"
    path.write_text(text.replace("cols = 4 ", "cols = 0 ", 1))
    with pytest.raises(ConfigError) as err:
        presets.default_shape(str(path))
    assert str(err.value) == f"preset {path}: [array] rows and cols must be positive"
