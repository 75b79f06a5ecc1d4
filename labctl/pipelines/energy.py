"""Parameterised energy model: programming (set/reset, program-verify) and inference (array
reads, DAC/ADC conversions, digital ops) per approach of the pruning pipeline.

The numbers live in a user-editable TOML file (default: ``energy_prune.toml`` beside this
module) where each value names its source or says placeholder.  The pipeline records event
counts; energies are counts times these numbers, so a different model can be applied to an
old run file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from labctl.pipelines.param_file import check_values, read_sections

DEFAULT_FILE = "energy_prune.toml"


@dataclass(frozen=True)
class EnergyModel:
    integration_time_s: float
    dac_conversion_J: float
    adc_conversion_J: float
    set_J: float
    reset_J: float
    verify_pulse_J: float
    verify_read_J: float
    reset_sweep_J: float
    mac_J: float
    op_J: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EnergyModel:
        return cls(**check_values(values, [f.name for f in fields(cls)], "energy model"))


def load_energy_model(path: str | None = None) -> EnergyModel:
    """Read an energy-model TOML (sections are for the reader; keys must be unique)."""
    return EnergyModel.from_dict(read_sections(path, "labctl.pipelines", DEFAULT_FILE,
                                               "energy model", "energy_model"))


def inference_J(counts: dict[str, float], m: EnergyModel) -> float:
    """Energy of one pass over the test set: array reads, conversions, digital work."""
    return (m.integration_time_s * counts.get("read_V2S", 0.0)
            + m.dac_conversion_J * counts.get("dac", 0.0)
            + m.adc_conversion_J * counts.get("adc", 0.0)
            + m.op_J * counts.get("digital_ops", 0.0)
            + m.mac_J * counts.get("digital_macs", 0.0))


def programming_J(counts: dict[str, float], m: EnergyModel) -> float:
    """Energy to put the network onto the chip (set/reset flips or program-verify)."""
    return (m.set_J * counts.get("sets", 0.0) + m.reset_J * counts.get("resets", 0.0)
            + m.verify_pulse_J * counts.get("verify_pulses", 0.0)
            + m.verify_read_J * counts.get("verify_reads", 0.0)
            + m.reset_sweep_J * counts.get("reset_sweeps", 0.0))
