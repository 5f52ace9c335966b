"""An estimator import path never imports (runs) a module lying in the working directory.

`python -m rtml_cli` puts the working directory on sys.path; a module beside a downloaded table
and its rtml.toml would otherwise run as it is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtml_cli.errors import ModelError
from rtml_cli.model_imports import load_estimator_class as _load_class


@pytest.mark.parametrize("entry", ["", "."])
def test_a_module_in_the_working_directory_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "rtml_cwd_evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass X:\n    pass\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry or str(tmp_path), *sys.path])
    if entry == "":
        sys.path.insert(0, "")
    with pytest.raises(ModelError, match="factory file"):
        _load_class("rtml_cwd_evil_mod:X")
    assert not marker.exists()
    assert "rtml_cwd_evil_mod" not in sys.modules
    assert sys.path[0] == (entry or str(tmp_path)) or sys.path[0] == ""


def test_installed_estimators_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    cls = _load_class("sklearn.linear_model:SGDClassifier")
    assert cls.__name__ == "SGDClassifier"
    assert sys.path[0] == str(tmp_path)
