"""python -m trainer {train,eval,eval-h36m,params,demo,ablate}: MPT pre-training from shards."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from shards.reader import ShardError
from trainer.config import load_config
from trainer.model import (
    MeshLevels,
    MeshRegressor,
    input_channels,
    metro_block_params,
    param_breakdown,
)

# SMPL's METRO mesh levels (full -> coarse), used by `params` when no shard folder is given.
SMPL_LEVELS = (6890, 1723, 431)
METRO_IMG_DIMS = (2051, 512, 128)  # METRO/Graphormer block inputs: 2048 + 3, then block outputs
METRO_OUT_DIMS = (512, 128, 3)
METRO_HIDDEN = (1024, 256, 128)  # METRO paper/code
MPT_HIDDEN = (1024, 256, 64)  # MPT supplementary F (as Graphormer)
METRO_LAYERS, METRO_INTERMEDIATE = 4, 3072  # METRO's legacy setting: BERT-base's 3072


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/demo.yaml", help="YAML config")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. train.steps=100 model.hidden=[64,32,16]",
    )


def placeholder_levels(sizes: tuple[int, ...]) -> MeshLevels:
    """Shapes-only topology (for parameter counts without a dataset)."""
    down = [sp.random(b, a, density=1.0 / a, format="csr") for a, b in zip(sizes, sizes[1:])]
    up = [sp.random(a, b, density=1.0 / b, format="csr") for a, b in zip(sizes, sizes[1:])]
    reg = np.full((17, sizes[0]), 1.0 / sizes[0], np.float32)
    return MeshLevels(np.zeros((sizes[0], 3), np.float32), np.zeros((0, 3), int), reg, down, up)


def cmd_params(args) -> int:
    cfg = load_config(args.config, args.set)
    if args.data:
        from trainer.data import DataSource

        src = DataSource(args.data, cfg)
        levels, cin, res = src.levels, src.in_channels, src.res
    else:
        levels, cin, res = (
            placeholder_levels(SMPL_LEVELS),
            input_channels(cfg["model"]["input"]),
            args.res,
        )
    model = MeshRegressor(cfg["model"], levels, cin, res)
    rows = param_breakdown(model)
    print(
        f"{args.config}: mesh levels {levels.sizes[::-1]} (coarse -> full), input {cin}x{res}x{res}"
    )
    for name, n in rows:
        print(f"  {name:22s}{n:>14,d}  ({n / 1e6:7.2f}M)")
    blocks = sum(n for name, n in rows if name.startswith("transformer block"))
    print(
        f"METRO's code for comparison (block inputs {METRO_IMG_DIMS}, outputs {METRO_OUT_DIMS}, "
        f"{METRO_LAYERS} layers, intermediate {METRO_INTERMEDIATE}):"
    )
    for label, hidden in (("MPT", MPT_HIDDEN), ("METRO", METRO_HIDDEN)):
        b = [
            metro_block_params(i, h, o, METRO_LAYERS, METRO_INTERMEDIATE)
            for i, h, o in zip(METRO_IMG_DIMS, hidden, METRO_OUT_DIMS)
        ]
        used, unused = sum(x["used"] for x in b), sum(x["unused"] for x in b)
        print(
            f"  {label} hidden {hidden}: {(used + unused) / 1e6:.1f}M = {used / 1e6:.1f}M used "
            f"in the forward pass + {unused / 1e6:.1f}M never used (BERT word embeddings "
            f"30522 x hidden, token-type table, embedding LayerNorm, pooler)"
        )
    n_tok = model.blocks[0].pos.shape[0]
    print(
        f"Table 1's '102M' matches METRO's own hidden sizes {METRO_HIDDEN} counted with the "
        f"unused tables. This model carries no unused parameters: its transformer blocks come "
        f"to {blocks / 1e6:.1f}M (position tables sized to its {n_tok} tokens, METRO's "
        f"linear input residual in every block)."
    )
    from trainer.flops import training_flops_per_sample

    flops = training_flops_per_sample(model, (cin, res, res))
    print(
        f"FLOPs per training sample (forward + backward, torch's FlopCounterMode): "
        f"{flops / 1e9:.1f} GFLOP over {n_tok} tokens"
    )
    return 0


def cmd_train(args) -> int:
    from trainer.train import train

    cfg = load_config(args.config, args.set)
    summary = train(cfg, args.data, args.out, resume=not args.restart, stop_at=args.stop_at)
    print(json.dumps(summary))
    return 0


def cmd_eval(args) -> int:
    from trainer.evaluate import evaluate, format_per_view, format_table

    res = evaluate(
        args.ckpt, args.data, split=args.split, max_samples=args.max_samples,
        precision=args.precision,
    )  # fmt: skip
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_table(res))
        if args.per_view:
            print(format_per_view(res))
    return 0


def cmd_eval_h36m(args) -> int:
    from trainer.h36m import evaluate_h36m, format_h36m_table

    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    res = evaluate_h36m(
        args.ckpt,
        args.data,
        args.h36m_3d,
        args.h36m_2d,
        subjects=subjects,
        stride=args.stride,
        nose=not args.no_nose,
        noise_px=args.noise_px,
        noise_seed=args.noise_seed,
    )
    print(json.dumps(res, indent=2) if args.json else format_h36m_table(res))
    return 0


def prediction_samples(ckpt: Path, data: Path, n: int = 6) -> tuple[list[dict], np.ndarray]:
    """A few val samples with predicted and ground-truth meshes for the figure."""
    from trainer.data import model_input
    from trainer.evaluate import load_model
    from trainer.losses import regress

    model, cfg, source, _ = load_model(ckpt, data)
    # spread the picks over the whole split (different meshes, cycling through the views)
    split_meshes = sum(s.meshes for s in source.manifest.split_shards(source.val_split))
    views = max(1, int(source.manifest.dims["V"]))
    total = split_meshes * views
    want = [
        int(m) * views + (i * 3) % views
        for i, m in enumerate(np.linspace(0, split_meshes - 1, n).round())
    ]
    picked, seen = [], 0
    for b in source.eval_loader(source.val_split, 256):
        k = len(b["sample_id"])
        rows = [w - seen for w in want if seen <= w < seen + k]
        if rows:
            picked.append({key: v[rows] for key, v in b.items()})
        seen += k
        if seen > max(want) or seen >= total:
            break
    batch = {k: torch.cat([p[k] for p in picked]) for k in picked[0]}
    idx = range(len(batch["sample_id"]))
    with torch.no_grad():
        out = model(model_input(batch, cfg["model"]["input"]))
    reg = torch.from_numpy(source.levels.h36m_regressor)
    pv = out["vertices"][-1]
    pv = pv - regress(reg, pv)[:, :1]
    pelvis = batch["joints3d"][:, :1]
    samples = []
    for i in range(len(idx)):
        samples.append(
            {
                "heatmaps": batch["heatmaps"][i].numpy(),
                "pred_vertices": pv[i].numpy(),
                "pred_cam": out["cam"][i].numpy(),
                "gt_vertices": (batch["vertices"][i] - pelvis[i]).numpy(),
                "gt_joints3d": (batch["joints3d"][i] - pelvis[i]).numpy(),
                "joints2d": batch["joints2d"][i].numpy(),
                "title": f"mesh {int(batch['sample_id'][i])}, view {int(batch['view'][i])}",
            }
        )
    return samples, np.asarray(source.levels.faces)


def cmd_demo(args) -> int:
    from shards.manifest import load_manifest
    from trainer.checkpoint import restart_if_stale
    from trainer.distributed import detect
    from trainer.evaluate import evaluate, format_open_world, format_table
    from trainer.figures import loss_curve, predictions_figure
    from trainer.logger import LOG_FILE
    from trainer.train import train

    cfg = load_config(args.config, args.set)
    out = Path(args.out)
    rank = detect().rank  # under a launcher every rank trains; rank 0 evaluates and draws

    def say(err: str) -> None:  # the demo's own run folder: start it afresh
        if rank == 0:
            print(f"{err}\nstarting the demo run afresh in {out}")

    restart_if_stale(partial(train, cfg, args.data, out), out, rank, say, not args.restart)
    if rank:
        return 0
    res = evaluate(out, args.data)
    print(format_table(res))
    # The open world (issue 30): val and test hold out whole datasets (the embedded default:
    # whole motion kinds); the in-kind build (new subjects doing train kinds) reads beside them.
    rows = [(f"{res['split']} split", res)]
    if res["split"] != "test" and "test" in load_manifest(args.data).splits:
        rows.append(("test split", evaluate(out, args.data, split="test")))
    if args.inkind:
        ink = evaluate(out, args.inkind, split="test", baseline_data=args.data)
        rows.append((f"in-kind ({Path(args.inkind).name})", ink))
    res["open_world"] = {label: r for label, r in rows[1:]}
    (out / "eval.json").write_text(json.dumps(res, indent=2))
    print(format_open_world(rows))
    figs = out / "figures"
    loss_curve(out / LOG_FILE, figs / "loss.png")
    samples, faces = prediction_samples(out, Path(args.data))
    predictions_figure(samples, faces, figs / "predictions.png")
    print(f"figures: {figs / 'predictions.png'}, {figs / 'loss.png'}")
    return 0


def cmd_ablate(args) -> int:
    import shlex

    from trainer.ablate import ablate
    from trainer.ablate.plan import QUICK_BATCHES, QUICK_EVAL_SAMPLES
    from trainer.ablate.run import H36M

    if (args.h36m_3d is None) != (args.h36m_2d is None):
        raise ValueError("give both --h36m-3d and --h36m-2d, or neither")
    if args.h36m_standin and not args.h36m_3d:  # Human3.6M-layout files of the test split
        from trainer.h36m_standin import write_standin

        args.h36m_3d, args.h36m_2d = write_standin(
            Path(args.data), Path(args.out) / "h36m_standin", "test"
        )
    h36m = (
        H36M(Path(args.h36m_3d), Path(args.h36m_2d), args.h36m_stride, args.h36m_noise_px)
        if args.h36m_3d
        else None
    )
    budget = {}  # what is not given: the plan's defaults (trainer/ablate/plan.py)
    if args.seeds:
        budget["seeds"] = [int(s) for s in args.seeds.split(",")]
    if args.samples:
        budget["samples"] = args.samples
    if args.eval_samples:
        budget["eval_samples"] = args.eval_samples
    if args.views_budget:
        budget["views_budget"] = args.views_budget
    if args.quick:
        batch = int(load_config(args.config, args.set)["train"]["batch_size"])
        budget.setdefault("samples", QUICK_BATCHES * batch)
        budget.setdefault("seeds", [0])
        budget.setdefault("eval_samples", QUICK_EVAL_SAMPLES)
    _, _, md = ablate(
        args.data,
        args.out,
        args.data_hires,
        command="python -m trainer " + shlex.join(args.argv),
        h36m=h36m,
        keep_checkpoints=args.keep_checkpoints,
        config=args.config,
        overrides=args.set,
        hires_overrides=args.hires_set,
        tables=args.tables.split(","),
        **budget,
    )
    from trainer.distributed import detect

    if detect().rank == 0:  # another rank of a launched job writes nothing
        print(md.read_text())
        print(f"written: {md} (+ results.json, one PNG per table)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from trainer.ablate.plan import SAMPLES as ABL_SAMPLES
    from trainer.ablate.plan import SEEDS as ABL_SEEDS
    from trainer.ablate.plan import VIEWS_BUDGETS
    from trainer.evaluate import PRECISIONS

    ap = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help="train from shards (resumes from OUT/checkpoints)")
    add_config_args(p)
    p.add_argument("--data", required=True, help="shard folder")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--restart", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--stop-at", type=int, default=None, help="stop (checkpointed) at this step")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("eval", help="MPJPE / PA-MPJPE / PVE (mm) vs the mean-mesh baseline")
    p.add_argument("--ckpt", required=True, help="run folder or its model.pt")
    p.add_argument("--data", required=True, help="shard folder")
    p.add_argument("--split", default=None)
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--per-view", action="store_true", help="also print the model per camera")
    p.add_argument(
        "--precision", choices=tuple(PRECISIONS), default="fp32",
        help="bf16: weights and input cast as DeepSpeed's bf16 casts them (its cost in mm)",
    )  # fmt: skip
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser(
        "eval-h36m", help="zero-shot Human3.6M MPJPE / PA-MPJPE from 2D keypoints (docs/h36m.md)"
    )
    p.add_argument("--ckpt", required=True, help="run folder or its model.pt")
    p.add_argument("--data", required=True, help="the checkpoint's shard folder")
    p.add_argument("--h36m-3d", required=True, help="VideoPose3D's data_3d_h36m.npz")
    p.add_argument("--h36m-2d", required=True, help="data_2d_h36m_gt.npz or a detection file")
    p.add_argument("--subjects", default="S9,S11", help="comma-separated (default S9,S11)")
    p.add_argument("--stride", type=int, default=5, help="every N-th frame (default 5: 10 fps)")
    p.add_argument(
        "--no-nose", action="store_true", help="leave COCO's nose empty (default: H36M 'Nose')"
    )
    p.add_argument(
        "--noise-px", type=float, default=0.0,
        help="add Gaussian noise of this std (image px, per axis) to the 2D keypoints (default 0)",
    )  # fmt: skip
    p.add_argument("--noise-seed", type=int, default=0, help="seed of --noise-px (default 0)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_eval_h36m)
    p = sub.add_parser("params", help="parameter count by part")
    add_config_args(p)
    p.add_argument("--data", default=None, help="shard folder (mesh sizes); default SMPL's")
    p.add_argument("--res", type=int, default=56, help="heatmap resolution without --data")
    p.set_defaults(fn=cmd_params)
    p = sub.add_parser("demo", help="train, evaluate, draw figures")
    add_config_args(p)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--restart", action="store_true")
    ik = "also evaluate on this build's test split (the in-kind reference; make shards-inkind)"
    p.add_argument("--inkind", default=None, metavar="DIR", help=ik)
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("ablate", help="the supplementary's Tables 2-4 beside the paper's numbers")
    add_config_args(p)
    p.add_argument("--data", required=True, help="8-view build with masks (Tables 2, 3, 4)")
    p.add_argument("--data-hires", default=None, help="the same build at a higher R (Table 3)")
    p.add_argument("--out", required=True, help="folder for runs/, ABLATIONS.md, PNGs")
    p.add_argument("--tables", default="2,3,4", help="which tables, e.g. 2,4")
    p.add_argument(
        "--samples", type=int, default=None, help=f"training samples per run ({ABL_SAMPLES})"
    )
    p.add_argument(
        "--seeds", default=None, help=f"comma-separated seeds ({','.join(map(str, ABL_SEEDS))})"
    )
    p.add_argument("--eval-samples", type=int, default=None, help="val samples (all)")
    p.add_argument(
        "--views-budget",
        choices=VIEWS_BUDGETS,
        default=None,
        help="Table 2: samples-each (default), equal-samples (one random view per mesh per"
        " epoch), equal-epochs (N views train N x --samples)",
    )
    p.add_argument(
        "--hires-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides for Table 3's high-resolution row only",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 4 batches per run, seed 0, 64 val samples"
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep finished runs' DeepSpeed checkpoints (model.pt is always kept)",
    )
    p.add_argument("--h36m-3d", default=None, help="data_3d_h36m.npz (zero-shot eval-h36m)")
    p.add_argument("--h36m-2d", default=None, help="2D keypoints file for eval-h36m")
    p.add_argument("--h36m-stride", type=int, default=None, help="eval-h36m --stride")
    p.add_argument(
        "--h36m-standin", action="store_true",
        help="without --h36m-3d/2d: eval-h36m on stand-in files of --data's test split",
    )  # fmt: skip
    p.add_argument(
        "--h36m-noise-px", type=float, default=10.0,
        help="also eval-h36m with this 2D noise, px (Table 2's columns; 0: clean only)",
    )  # fmt: skip
    p.set_defaults(fn=cmd_ablate)
    argv = list(sys.argv[1:] if argv is None else argv)
    # the deepspeed launcher passes --local_rank=N (also in LOCAL_RANK); drop it
    argv = [a for a in argv if not a.startswith("--local_rank")]
    args = ap.parse_args(argv)
    args.argv = argv
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, ShardError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a collective that timed out or lost a rank: one line
        from trainer.distributed import collective_failure

        msg = collective_failure(e)
        if msg is None:
            raise
        print(f"\nerror: {msg}", file=sys.stderr)  # on its own line after a progress bar
        return 3


if __name__ == "__main__":
    sys.exit(main())
