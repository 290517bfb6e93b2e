"""`robotrl train | eval | export | plot | list`. User mistakes exit 2 with a one-line message on stderr."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from robotrl.config import RobotrlError, TrainingInterrupted, parse_overrides


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise RobotrlError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="robotrl", description="Train, evaluate and export MuJoCo control policies.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train an agent on a task (or resume a run)")
    t.add_argument("task", nargs="?", help="task name (see `robotrl list`)")
    t.add_argument("--algo", default="ddpg", help="algorithm (default: ddpg)")
    t.add_argument("--steps", type=int, help="total environment steps (default: the card's total_steps)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", help="run directory (default: runs/<task>-<algo>-s<seed>-<time>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--json", action="store_true", help="print the result as one JSON line at the end")
    t.add_argument("--distributed",
                   metavar="collectors=N[,sync=STEPS][,block=STEPS][,bellman=M][,replay=1][,learner=1]",
                   help="collect on N Ray actors while this process learns (off-policy algorithms; QT-Opt's "
                        "Bellman targets on M more; replay=1: the replay on an actor of its own; learner=1: the "
                        "learner too, restarted from its last checkpoint if it dies; for a3c, its N actor-learner "
                        "workers; needs robotrl[distributed])")
    t.add_argument("--address", metavar="HOST:PORT",
                   help="with --distributed: join the Ray cluster at this head node (default: start Ray here)")

    e = sub.add_parser("eval", help="evaluate a run directory, checkpoint or exported .pt")
    e.add_argument("path")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=None,
                   help="episode i resets with SEED + i (default: the policy's report block, derived from its "
                        "training seed: episodes no periodic evaluation or keep_best has seen)")
    e.add_argument("--video", metavar="FILE", help="also film the episodes to FILE.mp4 or FILE.gif")
    e.add_argument("--fps", type=int, help="video frame rate (default: the task's real time)")
    e.add_argument("--size", default="480x480", help="video WIDTHxHEIGHT (default 480x480)")
    e.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="change an argument of the task's env (e.g. panda-grasp's objects=held_out)")
    e.add_argument("--json", action="store_true")

    x = sub.add_parser("export", help="export a run directory or checkpoint to TorchScript (+ .pt2, .onnx)")
    x.add_argument("path")
    x.add_argument("-o", "--output", required=True, help="output file, e.g. policies/reach-ddpg.pt")
    x.add_argument("--format", default="pt,pt2",
                   help="comma-separated formats written beside each other: pt (TorchScript, required), pt2 "
                        "(torch.export + AOTInductor, needs a C++ compiler), onnx (needs robotrl[onnx]); "
                        "default pt,pt2")
    x.add_argument("--json", action="store_true")

    g = sub.add_parser("plot", help="learning curves of run directories (mean ± std over seeds)")
    g.add_argument("runs", nargs="+", metavar="RUN_DIR")
    g.add_argument("-o", "--output", default="learning_curves.png", help="PNG file (default: learning_curves.png)")
    g.add_argument("--x", default="steps", help="x axis: steps | time")
    g.add_argument("--metric", default="eval_return",
                   help="eval_return | success_rate | train_return | any progress.csv column")
    g.add_argument("--size", default="800x500", help="image WIDTHxHEIGHT in pixels (default 800x500)")

    sub.add_parser("list", help="list tasks and algorithms")
    return p


def _emit(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:  # strict JSON: NaN (no success criterion) becomes null
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.items()}
        print(json.dumps(clean))
    else:
        print("\n".join(lines))


def _command_line() -> str:
    return "robotrl " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _fmt_success(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{rate:.0%}"


def cmd_train(args: argparse.Namespace) -> None:
    from robotrl.config import parse_overrides
    from robotrl.run import build_run, load_run, train

    distributed = None
    if args.distributed:
        from robotrl.distributed import parse_distributed

        distributed = parse_distributed(args.distributed, args.address)
    elif args.address:
        raise RobotrlError("--address names the Ray cluster of a --distributed run; add --distributed collectors=N")
    if args.resume:
        if args.task or args.set:
            raise RobotrlError("--resume continues a run as configured; do not pass a task or --set with it")
        run_dir = Path(args.resume)
        ckpt = run_dir / "checkpoints" / "last.pt"
        if not ckpt.is_file():
            raise RobotrlError(f"cannot resume: {ckpt} not found (is {run_dir} a run directory?)")
        run = load_run(ckpt, run_dir=run_dir)
        if distributed is not None:  # the learner and replay resume exactly; collectors start new episodes
            from robotrl.distributed import check_algo

            check_algo(run.algo.name, distributed)
            run.distributed, run.obs = distributed, None
    else:
        if not args.task:
            raise RobotrlError("train needs a TASK (see `robotrl list`) or --resume RUN_DIR")
        overrides = parse_overrides(args.set)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{args.task}-{args.algo}-s{args.seed}-{stamp}"
        run = build_run(args.task, args.algo, seed=args.seed, overrides=overrides, run_dir=run_dir,
                        distributed=distributed)
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise RobotrlError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    steps = args.steps if args.steps is not None else run.loop_cfg.total_steps
    if steps <= 0:
        raise RobotrlError(f"--steps must be positive, got {steps}")
    if run.distributed is not None:  # a wrong address or a missing Ray fails here, before any training
        from robotrl.distributed import connect

        connect(run.distributed)
    run.commands.append(_command_line())
    if run.distributed is not None and run.distributed.learner:  # this process watches a learner actor
        from robotrl.distributed.supervisor import train_supervised

        build = {"run_dir": run_dir} if args.resume else {
            "task": args.task, "algo": args.algo, "seed": args.seed, "overrides": parse_overrides(args.set),
            "run_dir": run_dir}
        result = train_supervised(build, run.distributed, steps, resume=bool(args.resume), commands=run.commands,
                                  device=run.loop_cfg.device)
    else:
        try:
            result = train(run, steps, progress=not args.no_progress)
        finally:
            if run.distributed is not None:
                from robotrl.distributed import shutdown

                shutdown(run)
    _emit(result, args.json, [
        f"run: {result['run_dir']}",
        f"steps: {result['steps']}  ({result['steps_per_s']} steps/s, {result['wall_time_s']} s)"
        + (f"  deployed policy: best evaluation, step {result['policy_step']}"
           if result["policy_step"] != result["steps"] else ""),
        f"eval return: {result['eval_mean_return']:.2f} ± {result['eval_std_return']:.2f}  "
        f"success: {_fmt_success(result['eval_success_rate'])}",
    ])


def cmd_eval(args: argparse.Namespace) -> None:
    from robotrl.evaluate import evaluate_path

    if args.episodes <= 0:
        raise RobotrlError(f"--episodes must be positive, got {args.episodes}")
    notes: list[str] = []
    env_kwargs = parse_overrides(args.env, flag="--env")
    if args.video:
        from robotrl.config import parse_size
        from robotrl.video import record_evaluation

        r, frames = record_evaluation(args.path, args.video, args.episodes, args.seed, args.fps,
                                      parse_size(args.size), notes=notes, env_kwargs=env_kwargs)
    else:
        r, frames = evaluate_path(args.path, episodes=args.episodes, seed=args.seed, notes=notes,
                                  env_kwargs=env_kwargs), 0
    for note in notes:
        print(f"robotrl: note: {note}", file=sys.stderr)
    result = {"mean_return": r.mean_return, "std_return": r.std_return, "success_rate": r.success_rate,
              "episodes": r.episodes, "returns": r.returns, "seed": r.seed,
              "block": r.block or "user seed", **({"env": env_kwargs} if env_kwargs else {})}
    changed = "".join(f", {k}={v}" for k, v in env_kwargs.items())
    lines = [f"{args.path}: return {r.mean_return:.2f} ± {r.std_return:.2f} over "
             f"{r.episodes} episodes, success {_fmt_success(r.success_rate)} "
             f"({'report block' if r.block else 'seeds'} {r.seed}+i{changed})"]
    if args.video:
        result.update(video=str(args.video), frames=frames)
        lines.append(f"video: {args.video} ({frames} frames)")
    _emit(result, args.json, lines)


def cmd_export(args: argparse.Namespace) -> None:
    from robotrl.export import export_checkpoint

    r = export_checkpoint(args.path, args.output, command=_command_line(), formats=args.format)
    _emit({"path": r.path, "card": r.card_path, "max_abs_diff": r.max_abs_diff, "files": r.files,
           "max_abs_diffs": r.max_abs_diffs}, args.json,
          [f"exported {path}" + (f" (max |diff| {r.max_abs_diffs[fmt]:.2g})" if fmt in r.max_abs_diffs else " (scene)")
           for fmt, path in r.files.items()]
          + [f"card {r.card_path}; verified on {r.observations_checked} observations"])


def cmd_plot(args: argparse.Namespace) -> None:
    from robotrl.config import parse_size
    from robotrl.plot import plot_runs

    path = plot_runs(args.runs, args.output, metric=args.metric, x_axis=args.x, size=parse_size(args.size))
    print(f"wrote {path}")


def cmd_list(_: argparse.Namespace) -> None:
    from robotrl.algos import ALGOS
    from robotrl.envs import list_tasks, load_card

    print("tasks:")
    for name in list_tasks():
        card = load_card(name)
        algos = ", ".join(card.algos) or "-"
        print(f"  {name:<10} {card.env_id:<22} horizon {card.horizon:<5} tuned: {algos:<12} {card.description}")
    from robotrl.distributed import DISTRIBUTED_ALGOS

    print("algorithms (* also trains with --distributed collectors=N, on Ray; a3c trains only there):")
    for spec in ALGOS.values():
        mark = "*" if spec.name in DISTRIBUTED_ALGOS else " "
        print(f" {mark}{spec.name:<10} {spec.summary}")


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "plot": cmd_plot, "list": cmd_list}


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        COMMANDS[args.command](args)
    except TrainingInterrupted as exc:  # the checkpoint is written; say how to continue
        print(f"robotrl: interrupted by {exc}", file=sys.stderr)
        return 128 + exc.signum
    except RobotrlError as exc:
        print(f"robotrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robotrl: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
