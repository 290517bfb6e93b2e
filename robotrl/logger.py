"""What every training loop logs with: the updates' running metric sums and the run's progress.csv and
TensorBoard events."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import torch

CSV_BASE_COLUMNS = ["step", "episodes", "time_s", "steps_per_s", "recent_return", "eval_block",
                    "eval_mean_return", "eval_std_return", "eval_success_rate"]
REPORT_COLUMNS = ["report_mean_return", "report_std_return", "report_success_rate"]


class MetricSums:
    """Running sum and count per metric key between two log rows: memory stays flat however many updates run
    between evaluations, and adding a 0-dim tensor to the sum never waits on a host sync."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():  # an algorithm may report a key on some updates only (TD3's actor loss)
            v = torch.as_tensor(v).detach()
            if k in self.sums:
                self.sums[k].add_(v)
                self.counts[k] += 1
            else:
                self.sums[k], self.counts[k] = v.to(torch.float64, copy=True), 1

    def means(self) -> dict[str, float]:
        return {k: float(self.sums[k]) / self.counts[k] for k in self.sums}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.cpu() for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, sd: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.sums = {k: v.to(device) for k, v in sd["sums"].items()}
        self.counts = dict(sd["counts"])


class RunLogger:
    """progress.csv (rewritten atomically when new metric columns appear) and TensorBoard events."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.tb = None
        if run.run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.run_dir / "tb"))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def row(self, row: dict[str, Any]) -> None:
        run = self.run
        run.progress_rows.append(row)
        if run.run_dir is None:
            return
        columns = list(CSV_BASE_COLUMNS)
        if any(REPORT_COLUMNS[0] in r for r in run.progress_rows):
            columns += REPORT_COLUMNS
        for r in run.progress_rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(run.progress_rows)
        path = run.run_dir / "progress.csv"
        tmp = path.with_suffix(".csv.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
