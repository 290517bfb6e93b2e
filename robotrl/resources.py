"""Locate the data folders (task cards, assets, shipped policies) in a wheel or a source checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# installed package name -> folder at the repository root (mapped at build time, see pyproject.toml)
DATA_FOLDERS = {"task_cards": "envs", "assets": "assets", "policies": "policies"}


def data_dir(name: str) -> Path:
    """The installed robotrl.<name> folder (a namespace package in the wheel), or the source tree's
    folder in an editable install."""
    try:
        spec = importlib.util.find_spec(f"robotrl.{name}")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parents[1] / DATA_FOLDERS[name]
