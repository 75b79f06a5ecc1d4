"""Station files: the examples parse, and inconsistent wiring or limits are refused by key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from labctl.drivers.station import load_station, parse_station
from labctl.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _doc() -> dict[str, Any]:
    with (EXAMPLES / "emulated-bench.toml").open("rb") as f:
        return tomllib.load(f)


def _parse(doc: dict[str, Any]) -> Any:
    return parse_station(doc, Path("test.toml"))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_station_parses(path: Path) -> None:
    st = load_station(path)
    assert {"smu", "pulse", "matrix"} <= set(st.instruments)
    assert len(st.wiring.bits) == st.chip.cols and len(st.wiring.words) == st.chip.rows


def test_emulated_bench_example_describes_the_default_die() -> None:
    st = load_station(EXAMPLES / "emulated-bench.toml")
    assert st.instruments["smu"].driver == "keithley-2636b"
    assert st.instruments["pulse"].driver == "keysight-33500b"
    assert st.instruments["matrix"].driver == "keithley-707b"
    assert st.instruments["smu"].socket == ("127.0.0.1", 15025)
    assert (st.chip.rows, st.chip.cols) == (8, 4) and st.emulation is not None
    assert st.emulation.preset == "cmo-hfox-1t1r"
    assert st.wiring.source(3) == 16 and st.wiring.word(0) == 5 and st.wiring.bit(3) == 4


def _mutate(path: str, value: Any) -> dict[str, Any]:
    doc = _doc()
    *parents, last = path.split(".")
    d = doc
    for p in parents:
        d = d[p]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value
    return doc


_DELETE = object()

CASES = [
    ("instruments.matrix", _DELETE, "instruments.matrix"),
    ("instruments.smu.driver", "keithley-9999", "instruments.smu.driver"),
    ("instruments.smu.driver", "keysight-33500b", "instruments.smu.driver"),
    ("instruments.pulse.resource", "not a resource", "instruments.pulse.resource"),
    ("instruments.pulse.resource", "TCPIP0::127.0.0.1::99999::SOCKET",
     "instruments.pulse.resource"),
    ("instruments.matrix.resource", "socket://127.0.0.1:0", "instruments.matrix.resource"),
    ("instruments.gate.options", {"channel": "a"}, "instruments"),
    ("wiring.inputs.pulse", 1, "wiring.inputs.pulse"),
    ("wiring.inputs.ground", _DELETE, "wiring.inputs.ground"),
    ("wiring.inputs.gate", _DELETE, "wiring.inputs.gate"),
    ("wiring.inputs.smu", 9, "wiring.inputs.smu"),
    ("wiring.mapping.bits", [1, 2, 3], "wiring.mapping.bits"),
    ("wiring.mapping.words", [5, 6, 7, 8, 9, 10, 11, 1], "wiring.mapping"),
    ("wiring.mapping.sources", [13, 14], "wiring.mapping.sources"),
    ("wiring.mapping.sources", [13, 14, 15, 16, 17, 18, 19, 80], "wiring.mapping.sources"),
    ("wiring.mapping.bits", [1, 2, "x", 4], "wiring.mapping.bits"),
    ("limits.max_voltage_V", 12.0, "limits.max_voltage_V"),   # beyond the 33500B
    ("limits.max_current_A", 2.0, "limits.max_current_A"),    # beyond the 2636B
    ("limits.min_pulse_width_s", 1e-9, "limits.min_pulse_width_s"),
    ("limits.max_pulse_width_s", 1e-9, "limits.min_pulse_width_s"),
    ("limits.max_current_A", -1e-3, "limits.max_current_A"),
    ("limits.max_gate_voltage_V", _DELETE, "limits.max_gate_voltage_V"),
    ("chip.read_voltage_V", 5.0, "chip.read_voltage_V"),
    ("chip.gate_voltage_V", 3.0, "chip.gate_voltage_V"),
    ("chip.set_polarity", 2, "chip.set_polarity"),
    ("chip.technology", "pcm", "chip.technology"),
    ("chip.window_S", [9e-5, 8e-6], "chip.window_S"),
    ("chip.rows", 0, "chip.rows"),
    ("chip.mask_reset_V", 9.0, "chip.mask_reset_V"),     # beyond limits.max_voltage_V
    ("chip.mask_set_V", 9.0, "chip.mask_set_V"),
    ("chip.mask_width_s", 1.0, "chip.mask_width_s"),     # beyond limits.max_pulse_width_s
    ("limits.max_gate_voltage_V", 300.0, "limits.max_gate_voltage_V"),   # beyond the gate SMU
    ("timing.timeout_s", 0, "timing.timeout_s"),
    ("timing.bogus", 1, "timing.bogus"),
    ("emulation.clock", "sundial", "emulation.clock"),
    ("instruments.smu.options", {"channel": "c"}, "instruments.smu.options"),
    # the gate's channel b written as the smu's a, in capitals or left to the default
    ("instruments.gate.options", {"channel": "A"}, "instruments.gate.resource"),
    ("instruments.gate.options", {}, "instruments.gate.resource"),
    ("instruments.pulse.options", {"channel": 1, "load": "75"}, "instruments.pulse.options"),
    ("instruments.matrix.options", {"slots": "two"}, "instruments.matrix.options"),
    ("wiring.triggers.set_line", 99, "wiring.triggers.set_line"),   # the 2636B has 1 to 14
    ("wiring.triggers.reset_line", 15, "wiring.triggers.reset_line"),
]


@pytest.mark.parametrize("path,value,key", CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_inconsistent_station_is_refused_naming_the_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        _parse(_mutate(path, value))
    assert e.value.key is not None and e.value.key.startswith(key), (e.value.key, str(e.value))
    assert "\n" not in str(e.value)


def test_fixed_gate_bias_instead_of_a_gate_smu() -> None:
    doc = _doc()
    del doc["instruments"]["gate"]
    doc["wiring"]["inputs"]["gate_bias"] = doc["wiring"]["inputs"].pop("gate")
    doc["wiring"]["gate_fixed_V"] = 1.2
    st = _parse(doc)
    assert st.wiring.gate_input == 3 and st.wiring.gate_fixed_V == 1.2
    doc["wiring"]["gate_fixed_V"] = 2.5
    with pytest.raises(ConfigError, match=re.escape("wiring.gate_fixed_V")):
        _parse(doc)


def test_word_lines_without_a_source_are_refused() -> None:
    doc = _doc()
    del doc["instruments"]["gate"]
    del doc["wiring"]["inputs"]["gate"]
    with pytest.raises(ConfigError) as e:
        _parse(doc)
    assert e.value.key == "instruments.gate"


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_station(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[chip\nrows = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_station(bad)
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text("[instruments]\n")
    with pytest.raises(ConfigError) as err:      # the file is named, as for a TOML error
        load_station(incomplete)
    assert str(err.value) == f"station file {incomplete}: missing [chip]"
    assert err.value.key == "chip"


def test_a_gate_limit_beyond_the_matrix_rating_is_refused() -> None:
    """The gate source-meter reaches the word lines through the matrix: its limit is held to
    the matrix's rating as the bit lines' is (a relay matrix of 50 V behind a 210 V SMU)."""
    with (EXAMPLES / "station-b2902a-33500b-relay.toml").open("rb") as f:
        doc = tomllib.load(f)
    doc["limits"]["max_gate_voltage_V"] = 100.0
    with pytest.raises(ConfigError) as e:
        _parse(doc)
    assert e.value.key == "limits.max_gate_voltage_V" and "matrix" in str(e.value)
