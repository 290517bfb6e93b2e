"""The wheel carries the task cards (and the assets/policies folders) as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Both tests build the wheel in the source tree's build/ folder: one worker, one at a time.
pytestmark = pytest.mark.xdist_group("packaging")

ROOT = Path(__file__).resolve().parents[1]


def test_built_wheel_contains_package_cards_and_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("robotrl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for card in (ROOT / "envs").glob("*.yaml"):
        assert f"robotrl/task_cards/{card.name}" in names
    for asset in (ROOT / "assets").rglob("*.xml"):
        assert f"robotrl/assets/{asset.relative_to(ROOT / 'assets').as_posix()}" in names
    for module in ("robotrl/cli.py", "robotrl/loop.py", "robotrl/algos/ddpg.py", "robotrl/envs/__init__.py"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "robotrl = robotrl.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_finds_its_task_cards_without_the_source_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("robotrl-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import robotrl, robotrl.envs as e; print(robotrl.__file__); print(e.cards_dir()); "
            "print(','.join(e.list_tasks()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    module_file, cards, tasks = proc.stdout.strip().splitlines()
    assert module_file.startswith(str(site)) and cards.startswith(str(site))
    assert {"reach", "push", "pendulum"} <= set(tasks.split(","))
