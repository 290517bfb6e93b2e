"""Locate the data folders (task cards, assets, shipped policies) in a wheel or a source checkout."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

# installed package name -> folder at the repository root (mapped at build time, see pyproject.toml)
DATA_FOLDERS = {"task_cards": "envs", "assets": "assets", "policies": "policies"}


def data_dir(name: str) -> Path:
    """The installed robotrl.<name> package folder, or the source tree's folder in an editable install."""
    try:
        return Path(str(importlib.resources.files(f"robotrl.{name}")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / DATA_FOLDERS[name]
