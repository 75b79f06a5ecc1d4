"""DESIGN.md's dependency rule, enforced by import-linter's contracts in pyproject.toml."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_kept(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0
