"""labctl: hardware-in-the-loop lab suite for analog in-memory-computing chips."""

__version__ = "0.1.0"
