"""Pure analysis functions of the device protocols: arrays in, numbers out, no I/O.

``levels`` (programmed-level statistics and overlaps), ``relaxation`` (retention fits),
``open_loop`` (symmetry-point figures of merit and the soft-bounds fit) and
``preset_toml`` (the fitted device model as preset text).
"""
