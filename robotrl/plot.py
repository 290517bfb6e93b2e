"""Learning curves from runs' progress.csv: runs of the same task and algorithm are grouped into
mean ± std across seeds (matplotlib, Agg backend, so it works headless)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from robotrl.config import RobotrlError

# Short names users type for the usual columns; any other progress.csv column is accepted as is.
METRIC_ALIASES = {"eval_return": "eval_mean_return", "success_rate": "eval_success_rate",
                  "train_return": "recent_return"}
X_AXES = {"steps": ("step", "environment steps"), "time": ("time_s", "wall time (s)")}


@dataclass
class Curve:
    """One labelled curve: x values and one row of y values per seed (runs of one group)."""

    label: str
    x: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    steps_per_s: list[float] = field(default_factory=list)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean and std across seeds on the x values all runs share (the shortest run's)."""
        n = min(len(x) for x in self.x)
        ys = np.stack([y[:n] for y in self.y])
        xs = np.mean(np.stack([x[:n] for x in self.x]), axis=0)
        return xs, np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)


def read_progress(run_dir: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The run's (task, algo) from config.yaml and its progress.csv rows; one-line errors otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RobotrlError(f"{run_dir} is not a directory (expected a run directory from `robotrl train`)")
    progress = run_dir / "progress.csv"
    if not progress.is_file():
        raise RobotrlError(f"{run_dir} has no progress.csv (is it a run directory from `robotrl train`?)")
    with progress.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise RobotrlError(f"{progress} has no rows yet")
    meta = {"task": run_dir.name, "algo": ""}
    config = run_dir / "config.yaml"
    if config.is_file():
        doc = yaml.safe_load(config.read_text()) or {}
        meta = {"task": str(doc.get("task", run_dir.name)), "algo": str(doc.get("algo", ""))}
    return meta, rows


def _column(rows: list[dict[str, str]], name: str, source: Path) -> np.ndarray:
    if name not in rows[0]:
        allowed = sorted(set(rows[0]) | set(METRIC_ALIASES))
        raise RobotrlError(f"{source} has no column '{name}'; available: {', '.join(allowed)}")
    return np.array([float(r[name]) if r[name] not in ("", None) else math.nan for r in rows])


def collect_curves(run_dirs: list[Path], metric: str, x_axis: str) -> list[Curve]:
    if x_axis not in X_AXES:
        raise RobotrlError(f"--x must be one of {', '.join(X_AXES)}, got '{x_axis}'")
    column = METRIC_ALIASES.get(metric, metric)
    groups: dict[str, Curve] = {}
    for run_dir in run_dirs:
        meta, rows = read_progress(run_dir)
        label = f"{meta['task']} {meta['algo']}".strip()
        curve = groups.setdefault(label, Curve(label))
        curve.x.append(_column(rows, X_AXES[x_axis][0], run_dir / "progress.csv"))
        curve.y.append(_column(rows, column, run_dir / "progress.csv"))
        steps, seconds = (_column(rows, name, run_dir / "progress.csv")[-1] for name in ("step", "time_s"))
        curve.steps_per_s.append(float(steps / seconds))  # the whole run's rate (the column is per session)
    return list(groups.values())


def plot_curves(curves: list[Curve], output: Path, metric: str, x_label: str, title: str = "",
                size: tuple[int, int] = (800, 500), dpi: int = 100) -> Path:
    """Draw mean ± std bands, one colour per curve, and write a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise RobotrlError(f"plot output must end in .png, got '{output.name}'")
    if not output.parent.is_dir():
        raise RobotrlError(f"cannot write {output}: directory {output.parent} does not exist")
    fig, ax = plt.subplots(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    for i, curve in enumerate(curves):
        x, mean, std = curve.mean_std()
        colour = f"C{i % 10}"
        seeds = len(curve.y)
        label = f"{curve.label} ({seeds} seed{'s' * (seeds > 1)}, {np.mean(curve.steps_per_s):.0f} steps/s)"
        ax.plot(x, mean, color=colour, label=label)
        if seeds > 1:
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    tmp = output.with_name(output.name + ".tmp")
    try:
        fig.savefig(tmp, format="png")
        tmp.replace(output)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return output


def plot_runs(run_dirs: list[str | Path], output: str | Path, metric: str = "eval_return",
              x_axis: str = "steps", size: tuple[int, int] = (800, 500)) -> Path:
    if not run_dirs:
        raise RobotrlError("plot needs at least one run directory")
    curves = collect_curves([Path(d) for d in run_dirs], metric, x_axis)
    return plot_curves(curves, Path(output), metric, X_AXES[x_axis][1], size=size)
