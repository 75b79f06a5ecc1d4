"""The simulated backend: SimulatedArray, device models and presets, the emulated bench."""
