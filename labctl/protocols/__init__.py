"""Device protocols: each a config dataclass, a generator of steps, a thin run(), analysis."""
