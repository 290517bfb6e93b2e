"""tools/bench_time_to.py: both libraries race to a threshold on the same env, clocks stopped while evaluating."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_time_to", ROOT / "tools" / "bench_time_to.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_tiny_race_stops_at_the_threshold_or_the_budget_and_prints_both_sides(capsys, tmp_path):
    bench = _bench()
    save = tmp_path / "t.json"
    code = bench.main(["--tasks", "pendulum", "--seeds", "1", "--threshold", "pendulum=1", "--budget",
                       "pendulum=600", "--eval-every", "300", "--eval-episodes", "2", "--save", str(save)])
    assert code == 0
    results = json.loads(save.read_text())
    assert sorted(r["library"] for r in results) == ["robotrl", "sb3"]
    assert {r["library"]: r["threads"] for r in results} == {"robotrl": 1, "sb3": 2}  # each side's default
    for r in results:  # any policy balances >= 1 step: both reach it at the first evaluation
        assert r["steps_to"] == 300 and r["time_to_s"] == r["curve"][0][1] > 0 and len(r["curve"]) == 1
        assert r["curve"][0][2] >= 1
    out = capsys.readouterr().out
    assert "| pendulum | return >= 1 |" in out
    row = bench.summary_rows(results)[0]
    assert row["ratio"] == pytest.approx(row["robotrl"]["time"] / row["sb3"]["time"])

    # unreachable: every run goes to its budget; --resume keeps the finished runs of the other threshold; --set
    # changes robotrl's card for a sweep and is recorded
    code = bench.main(["--tasks", "pendulum", "--seeds", "1", "--libraries", "robotrl", "--threshold",
                       "pendulum=100000", "--budget", "pendulum=600", "--eval-every", "300", "--eval-episodes", "1",
                       "--set", "batch_size=64", "--save", str(save), "--resume"])
    assert code == 0
    results = json.loads(save.read_text())
    assert len(results) == 3
    late = results[-1]
    assert late["steps_to"] is None and late["time_to_s"] is None and [s for s, _, _ in late["curve"]] == [300, 600]
    assert late["card_overrides"] == {"batch_size": 64} and results[0]["card_overrides"] == {}
    out = capsys.readouterr().out
    assert "not reached" in out and "| pendulum batch_size=64 | return >= 100000 |" in out
    assert math.isinf(bench.summary_rows(results)[1]["robotrl"]["time"])

    # --load prints a saved file, plain or with metadata around its runs
    (tmp_path / "meta.json").write_text(json.dumps({"commit": "x", "runs": results}))
    for path in (save, tmp_path / "meta.json"):
        assert bench.main(["--load", str(path)]) == 0
        assert "| pendulum batch_size=64 | return >= 100000 |" in capsys.readouterr().out


def test_bad_tasks_thresholds_and_libraries_are_one_line_errors(capsys):
    bench = _bench()
    assert bench.main(["--tasks", "no-such-task"]) == 2
    assert bench.main(["--tasks", "pendulum", "--threshold", "walker=3"]) == 2
    assert bench.main(["--tasks", "pendulum", "--libraries", "cleanrl"]) == 2
    assert bench.main(["--tasks", "pendulum", "--algo", "td3"]) == 2  # no zoo entry recorded for SB3
    assert bench.main(["--tasks", "pendulum", "--resume"]) == 2
    assert bench.main(["--tasks", "pendulum", "--set", "batch_sise=64"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 6 and all(e.startswith("error: ") for e in errors), errors
    assert "no such task card" in errors[0] and "walker" in errors[1] and "td3" in errors[3]
    assert "batch_sise" in errors[5]
