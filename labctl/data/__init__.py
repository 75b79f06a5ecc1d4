"""Run files: one HDF5 file per run, appended and flushed as measured (DESIGN.md)."""

from labctl.data.runfile import FORMAT, RunReader, RunWriter

__all__ = ["FORMAT", "RunReader", "RunWriter"]
