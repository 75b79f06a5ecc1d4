"""The pruning energy model and the sparse-training cost model refuse the same bad files
alike: one ConfigError line naming the key (a NaN energy used to print `nan J` for every
approach of a complete prune run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.errors import ConfigError
from labctl.pipelines.energy import load_energy_model
from labctl.pipelines.sparse.cost_model import load_cost_model

LOADERS = {"energy model": (load_energy_model, "mac_J"),
           "cost model": (load_cost_model, "pulse_energy_J")}


@pytest.mark.parametrize("what", sorted(LOADERS))
@pytest.mark.parametrize("value, words", [("nan", "finite number >= 0"),
                                          ("inf", "finite number >= 0"),
                                          ("-1.0", "finite number >= 0"),
                                          ('"1 pJ"', "finite number >= 0"),
                                          ("true", "finite number >= 0")])
def test_a_bad_value_is_refused_naming_its_key(tmp_path: Path, what: str, value: str,
                                               words: str) -> None:
    load, key = LOADERS[what]
    f = tmp_path / "m.toml"
    defaults = load()
    text = "".join(f"[s]\n{k} = {v!r}\n" if i == 0 else f"{k} = {v!r}\n"
                   for i, (k, v) in enumerate(vars(defaults).items()))
    f.write_text(text.replace(f"{key} = {getattr(defaults, key)!r}", f"{key} = {value}"))
    with pytest.raises(ConfigError) as e:
        load(str(f))
    assert str(e.value).startswith(what) and key in str(e.value) and words in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("what", sorted(LOADERS))
def test_a_directory_or_a_missing_file_is_named_as_such(tmp_path: Path, what: str) -> None:
    load, _ = LOADERS[what]
    with pytest.raises(ConfigError, match="is a directory"):
        load(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "none.toml"))
