"""On-chip analog training (issue 7): every MVM, transposed MVM, pulsed update and column read
goes through the Array interface, so the same run trains a simulated chip or a real one.

Modules: :mod:`.tile` (one weight matrix on one Array), :mod:`.pulses` (stochastic pulse
trains), :mod:`.calibrate` (symmetry point, step, initial weights), :mod:`.rules` (one update
rule per module), :mod:`.network` (digital parts, FP baseline), :mod:`.protocol` (the
resumable training run), :mod:`.bank` (several arrays as one backend).
"""

from labctl.pipelines.array_bank import ArrayBank, make_bank
from labctl.pipelines.train.calibrate import CalibrationConfig
from labctl.pipelines.train.protocol import (
                                             TrainConfig,
                                             TrainData,
                                             Training,
                                             analyse_training,
                                             array_plan,
)
from labctl.pipelines.train.rules import ALGORITHMS, RULES
from labctl.pipelines.train.tile import AnalogTile, TileConfig

__all__ = ["ALGORITHMS", "RULES", "AnalogTile", "ArrayBank", "CalibrationConfig", "TileConfig",
           "TrainConfig", "TrainData", "Training", "analyse_training", "array_plan", "make_bank"]
