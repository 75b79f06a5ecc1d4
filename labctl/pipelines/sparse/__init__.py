"""Index-free sparse training on two-FeFET arrays (issue 8, seed 001).

Modules: :mod:`.layer` (a weight matrix as a differential pair of two-FeFET arrays, mask and
gate-pulse updates in the array), :mod:`.vau` (the vectorial approximate update, the exact
cell-by-cell update and the error between them), :mod:`.topology` (RigL prune/regrow),
:mod:`.network` (the multilayer perceptron), :mod:`.cost_model` (latency/energy of the
index-free, index-based and dense designs; parameters in ``cost_fefet.toml``), :mod:`.arrays`
(several arrays as one backend; windows of one die), :mod:`.train` (the resumable protocol),
:mod:`.analysis` (summary, throughput and cost table from a run file).
"""

from labctl.pipelines.sparse.analysis import analyse_sparse, samples_per_s
from labctl.pipelines.sparse.cost_model import CostParams, load_cost_model
from labctl.pipelines.sparse.layer import PulseConfig, SparseLayer
from labctl.pipelines.sparse.topology import TopologyConfig
from labctl.pipelines.sparse.train import SparseData, SparseTrainConfig, SparseTraining, array_plan

__all__ = ["CostParams", "PulseConfig", "SparseData", "SparseLayer", "SparseTrainConfig",
           "SparseTraining", "TopologyConfig", "analyse_sparse", "array_plan", "load_cost_model",
           "samples_per_s"]
