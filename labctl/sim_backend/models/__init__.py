"""Device models of the simulated backend, one technology per module (strategies).

``cmo_hfox`` (seed 004), ``rram_random`` (seed 000), ``fefet_2t`` (seed 001); shared
physics helpers: ``pulse_response`` (generalized soft bounds / power step),
``relaxation`` (log-time drift after programming), ``read_noise`` (1/f + RTN).
Presets pick a model by kind in :mod:`labctl.sim_backend.presets`.
"""
