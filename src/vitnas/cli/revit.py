"""`vitnas revit train|label|train-tla|eval`: adaptive token length (ReViT and the assigner)."""

from __future__ import annotations

import argparse
import json
import sys

from vitnas.cli.common import (
    _command_line,
    add_run_options,
    at_most,
    default_device,
    distinct_positive_ints,
    finite_float,
    learning_rate,
    nonnegative_float,
    positive_float,
    positive_int,
    positive_ints,
    positive_ints_or_none,
    probability,
    resamples,
    say,
    seed,
    shares,
    writable,
)
from vitnas.formatting import human

NONE_CORRECT = ("largest", "smallest", "drop")  # vitnas.revit.labels, without importing torch
PRECISIONS = ("auto", "bf16", "fp32")  # vitnas.train.PRECISIONS, without importing torch


def _revit_config(args: argparse.Namespace):
    """The ReViT shape: a searched architecture (--arch/--arch-file in --space) or the flags."""
    from vitnas.errors import ConfigError
    from vitnas.revit.model import ReViTConfig, config_from_arch

    lengths = dict(route=args.route, fractions=args.fractions or (0.25, 0.5, 1.0),
                   grids=args.grids)
    shape = {"embed_dim": 96, "depth": 6, "num_heads": 3, "mlp_ratio": 2.0}
    spec = args.arch if args.arch is not None else args.arch_file
    if args.arch is not None and args.arch_file is not None:
        raise ConfigError("give --arch or --arch-file, not both")
    if spec is None:
        if args.space:
            raise ConfigError("--space needs an architecture: --arch JSON or --arch-file PATH")
        config = ReViTConfig(img_size=args.img_size or 32, patch_size=args.patch_size or 4,
                             num_classes=args.num_classes or 10, **lengths,
                             **{k: getattr(args, k) or v for k, v in shape.items()})
        config.check()  # here, before any data is read
        return config
    given = [f"--{k.replace('_', '-')}" for k in shape if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} cannot be combined with an architecture; "
                          f"the architecture sets the shape")
    from vitnas.spaces import get_space
    from vitnas.spaces.base import read_architecture

    space_name = args.space or "autoformer-tiny-micro"
    options = {"img_size": args.img_size, "patch_size": args.patch_size,
               "num_classes": args.num_classes}
    arch = read_architecture(get_space(space_name, **options), spec)
    return config_from_arch(space_name, arch, **lengths, **options)


def cmd_revit_train(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.checkpoint import state_path_for
    from vitnas.device import check_device
    from vitnas.errors import ConfigError
    from vitnas.revit.pipeline import train_step
    from vitnas.revit.training import SplitSpec
    from vitnas.train import TrainConfig

    set_threads(args.threads)
    # before the training, not after it; never over the weights or architecture it starts from
    writable(args.out, "--out", inputs=[args.init_from, args.arch_file, args.arch])
    for option in ("space", "fold", "init_from"):
        if getattr(args, option) is not None and not getattr(args, option).strip():
            raise ConfigError(f"--{option.replace('_', '-')} is empty")
    config = _revit_config(args)
    if args.fold is not None:
        split = SplitSpec.parse_fold(args.fold, args.split_seed)
    else:
        split = SplitSpec("holdout", per_class=args.holdout_per_class, seed=args.split_seed)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               seed=args.seed, precision=args.precision)
    device = check_device(default_device(args))  # a bad name is one line, not torch's error
    if train_config.emulated_bf16(device):
        print("note: --precision bf16 on a CPU without bf16 instructions (no AVX512-BF16 or "
              "AMX): torch emulates it and steps run several times slower than fp32 "
              "(benchmarks/train_precision.py); --precision auto uses fp32 on a CPU",
              file=sys.stderr)
    meta = train_step(config, args.out, args.dataset, train_config, args.mode, split,
                      args.train_per_class, args.data_dir, device,
                      progress=not args.quiet, resume=args.resume, init_from=args.init_from,
                      command=_command_line(args))
    if args.json:
        print(json.dumps(meta, indent=1))
        return
    lengths = meta["lengths"]["lengths"]
    resumed = ("" if meta["resumed_from_step"] is None
               else f", resumed at step {meta['resumed_from_step']}")
    print(f"{args.out}: ReViT trained on {meta['train_images']} images ({args.mode}, "
          f"{meta['steps']} steps, {meta['seconds']:.0f} s{resumed}; state in "
          f"{state_path_for(args.out)}); test top-1 by length: " + ", ".join(
              f"{length['tokens']} tokens {top1:.2f}%"
              for length, top1 in zip(lengths, meta["test_top1"])))


def cmd_revit_label(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.revit.pipeline import label_step

    set_threads(args.threads)
    writable(args.out, "--out", inputs=args.models)
    summary = label_step(args.models, args.out, args.none_correct, args.data_dir,
                         command=_command_line(args))
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{args.out}: {summary['images']} unseen training images labelled; accuracy by length "
          f"{summary['accuracy_by_length']}; labels per length (short to long) "
          f"{summary['histogram']}; {summary['none_correct']} with no correct length "
          f"(policy {summary['policy']})")


def cmd_revit_train_tla(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.errors import ConfigError
    from vitnas.revit import artifacts
    from vitnas.revit.pipeline import assigner_step

    set_threads(args.threads)
    # before the cross-fitting, not after it
    writable(args.out, "--out", inputs=[args.labels, args.revit])
    _refuse_unread_options(args)
    input_size = args.input_size or DEFAULT_INPUT_SIZE
    widths = args.widths or DEFAULT_WIDTHS
    temperature = args.temperature or DEFAULT_TEMPERATURE
    images = len(artifacts.load_labels(args.labels)["indices"])
    if args.folds > images:
        raise ConfigError(f"--folds {args.folds} exceeds the {images} labelled images in "
                          f"{args.labels}")
    if args.balance and args.weighting not in (None, "balanced"):
        raise ConfigError(f"--balance means --weighting balanced, not {args.weighting}")
    weighting = "balanced" if args.balance else (args.weighting or "none")
    summary = assigner_step(args.labels, args.revit, args.out, input_size, widths,
                            args.epochs, args.folds, args.max_loss, weighting, args.seed,
                            args.data_dir, args.target, args.features, temperature,
                            args.bootstrap, command=_command_line(args),
                            status=None if args.json else say)
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    calibration, oof = summary["calibration"], summary["out_of_fold"]
    low, high = oof["accuracy_minus_prior_ci"]
    auc_low, auc_high = oof["needs_more_auc_ci"]
    # --bootstrap 0 (or too few images): no interval, never a NaN one
    accuracy_ci = f" [95% CI {low:+.2f}, {high:+.2f}]" if _finite(low, high) else ""
    auc_ci = f" [{auc_low:.3f}, {auc_high:.3f}]" if _finite(auc_low, auc_high) else ""
    print(f"{args.out}: TLA ({args.target}, {args.features}, weighting {weighting}; "
          f"{human(summary['flops'])}FLOPs) trained on {summary['images']} labelled images")
    print(f"  out-of-fold label accuracy {oof['accuracy']:.2f}% vs majority share "
          f"{oof['majority_share']:.2f}%: {oof['accuracy_minus_prior']:+.2f} points"
          f"{accuracy_ci}; needs-more-tokens ROC AUC {oof['needs_more_auc']:.3f}{auc_ci} "
          f"(ReViT's own short-pass confidence: {oof.get('reference_auc', float('nan')):.3f})")
    for name in ("tla", "cascade"):
        point, ratio = calibration[name], calibration[name]["flops_ratio_vs_fixed"]
        print(f"  {name}: knob {point['knob']} -> {point['accuracy']:.2f}% at "
              f"{point['flops'] / 1e6:.1f} MFLOPs on the pool, "
              + ("more accurate than every fixed length" if ratio is None else
                 f"FLOPs ratio {ratio:.2f}x against the fixed-length curve at equal accuracy "
                 f"(> 1: above it)"))
    print(f"  (full length {calibration['full_length_accuracy']:.2f}% on the pool; calibrated "
          f"for <= {args.max_loss:g} points below it)")


DEFAULT_INPUT_SIZE = 16
DEFAULT_WIDTHS = (16, 32, 64)
DEFAULT_TEMPERATURE = 1.0
CNN_FEATURES = ("pixels", "both")  # the features that read --input-size and --widths


def _refuse_unread_options(args: argparse.Namespace) -> None:
    """Refuse an option the chosen target or features never read: it would be recorded in
    the assigner's file as if it had shaped the training."""
    from vitnas.errors import ConfigError

    if args.temperature is not None and args.target != "margin":
        raise ConfigError(f"--temperature only softens --target margin; --target {args.target} "
                          f"does not read it")
    if args.features not in CNN_FEATURES:
        given = [flag for flag, value in (("--input-size", args.input_size),
                                          ("--widths", args.widths)) if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} {'shape' if len(given) > 1 else 'shapes'} "
                              f"the thumbnail CNN of --features pixels or both; --features "
                              f"{args.features} has none")


def cmd_revit_eval(args: argparse.Namespace) -> None:
    from vitnas.bench.groundtruth import set_threads
    from vitnas.errors import ConfigError
    from vitnas.revit.evaluate import comparison_lines, markdown_table
    from vitnas.revit.pipeline import eval_step

    set_threads(args.threads)
    writable(args.out, "--out")  # eval_step refuses, before measuring, --out over an input
    if args.pool is not None and not args.pool.strip():
        raise ConfigError("--pool is empty; name a labels file (or leave --pool out)")
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    evaluation = eval_step(args.revit, args.tla, args.out, args.data_dir, args.batch_size,
                           args.repeats, args.test_per_class, args.tla_threshold,
                           args.cascade_threshold, args.none_correct, progress,
                           None if args.fixed_grids is None else list(args.fixed_grids),
                           command=_command_line(args), pool_path=args.pool,
                           tome_rates=list(args.tome_rates),
                           resamples=args.bootstrap, seed=args.seed, max_loss=args.max_loss,
                           merge_rates=list(args.merge_rates))
    if args.json:
        print(json.dumps(evaluation.as_dict(), indent=1))
        return
    print(f"{evaluation.test_images} test images, batch {evaluation.batch_size}, "
          f"{evaluation.threads} threads; ratios: median of {evaluation.repeats} interleaved "
          f"rounds [95% bootstrap interval over rounds and images, {evaluation.resamples} "
          f"draws]; peers' thresholds chosen on {evaluation.pool.get('source')}; assigner "
          f"FLOPs per image counted in its rows")
    print(markdown_table(evaluation))
    for line in comparison_lines(evaluation):
        print(line)
    if args.out:
        print(f"wrote {args.out} (+ .md, .png)")


def _finite(*values: float) -> bool:
    import math

    return all(math.isfinite(v) for v in values)


MAX_EPOCHS = 10_000  # ReViT and the assigner train for tens to hundreds of epochs
MAX_REPEATS = 1_000  # timing rounds: each one runs every policy over the test split


_revit_epochs = at_most(positive_float, MAX_EPOCHS, "a ReViT trains for hundreds at most")
_assigner_epochs = at_most(positive_int, MAX_EPOCHS, "the assigner trains for tens")
_repeats = at_most(positive_int, MAX_REPEATS, "each round times every policy")

MAX_FOLDS = 20  # each fold is one more assigner training; more folds change nothing measurable


def _folds(text: str) -> int:
    """An argparse type: cross-fitting needs at least two folds, and each fold costs a
    training, so a count in the hundreds (hours of work for no better estimate) is refused."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2 (one fold trains, another is "
                                         f"predicted), got {text}")
    if value > MAX_FOLDS:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_FOLDS} (each fold trains the "
                                         f"assigner once more), got {text}")
    return value


MIN_INPUT_SIZE = 4  # vitnas.revit.assigner.MIN_INPUT_SIZE, without importing torch
MAX_INPUT_SIZE = 16_384  # as every image size; the assigner also refuses more than the images'
MAX_STAGE_WIDTH = 512  # 8x the default's widest stage: 385 MFLOPs an image at 16 px, more
# than the ReViTs it routes for (a router must cost a fraction of them)
MAX_STAGES = 16  # stride-2 stages take even a 16,384 px thumbnail to one pixel in 15


def _input_size(text: str) -> int:
    """An argparse type: a thumbnail size the assigner's CNN can read, refused past any
    image size (a huge one allocates terabytes before failing)."""
    value = at_most(positive_int, MAX_INPUT_SIZE, "the thumbnail downsamples the image")(text)
    if value < MIN_INPUT_SIZE:
        raise argparse.ArgumentTypeError(f"must be >= {MIN_INPUT_SIZE} (the CNN's thumbnail "
                                         f"in pixels), got {text}")
    return value


def _widths(text: str) -> tuple[int, ...]:
    """An argparse type: the CNN's stage widths, capped so that a typo like 100000 is refused
    at once instead of running for minutes through gigabytes."""
    values = positive_ints(text)
    wide = [v for v in values if v > MAX_STAGE_WIDTH]
    if wide:
        raise argparse.ArgumentTypeError(f"each stage width must be <= {MAX_STAGE_WIDTH:,} (the "
                                         f"assigner must cost a fraction of the ReViT), got "
                                         f"{', '.join(map(str, wide))}")
    if len(values) > MAX_STAGES:
        raise argparse.ArgumentTypeError(f"at most {MAX_STAGES} stages, got {len(values)}")
    return values


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands on the top-level parser."""
    revit = sub.add_parser("revit", help="adaptive token length: ReViT, labels, the "
                                         "Token-Length Assigner, evaluation")
    revit_sub = revit.add_subparsers(dest="revit_command", required=True, metavar="STEP")
    p = revit_sub.add_parser("train", help="train one ViT for several token lengths")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--img-size", type=positive_int, help="input size (default 32)")
    p.add_argument("--patch-size", type=positive_int, help="patch size (default 4)")
    p.add_argument("--embed-dim", type=positive_int, help="embedding dim (default 96)")
    p.add_argument("--depth", type=positive_int, help="layers (default 6)")
    p.add_argument("--num-heads", type=positive_int, help="heads per layer (default 3)")
    p.add_argument("--mlp-ratio", type=positive_float, help="MLP ratio (default 2)")
    p.add_argument("--num-classes", type=positive_int, help="classes (default 10)")
    p.add_argument("--space", help="AutoFormer-family space of --arch (default "
                                   "autoformer-tiny-micro)")
    p.add_argument("--arch", help="a searched architecture as JSON (or a file path), e.g. the "
                                  "winner of `vitnas search`; replaces the shape flags")
    p.add_argument("--arch-file", help="the architecture as a JSON file")
    p.add_argument("--resume", action="store_true",
                   help="continue from the state saved after every epoch (revit.state.pt for "
                        "--out revit.pt) when it exists")
    p.add_argument("--init-from", help="start from this ReViT checkpoint's weights (same shape "
                                       "and split) with a fresh schedule")
    p.add_argument("--route", choices=["resize", "patch"], default="resize",
                   help="change length by resizing the image (default) or the patch")
    lengths = p.add_mutually_exclusive_group()
    lengths.add_argument("--fractions", type=shares,
                   help="token shares in (0, 1], e.g. '0.25,0.5,1' (the default)")
    lengths.add_argument("--grids", type=distinct_positive_ints,
                   help="token grids instead (whole numbers), e.g. '4,6,8'")
    p.add_argument("--mode", choices=["random", "all", "distill"], default="distill",
                   help="one random length per step, all lengths (summed CE), or all lengths "
                        "with distillation from the longest (default)")
    unseen = p.add_mutually_exclusive_group()
    unseen.add_argument("--holdout-per-class", type=positive_int, default=500,
                        help="training images per class kept unseen for labelling (default 500)")
    unseen.add_argument("--fold",
                        help="'i/k': leave fold i of k unseen instead (out-of-fold labels)")
    p.add_argument("--split-seed", type=seed, default=0)
    p.add_argument("--train-per-class", type=positive_int, help="first K training images per class")
    p.add_argument("--epochs", type=_revit_epochs, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=learning_rate, default=1e-3)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="bf16 autocast: 'auto' on a GPU only; 'bf16' on CPU too (about 1.5x "
                        "faster steps where the CPU has AMX/AVX512-BF16)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    add_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_revit_train)

    p = revit_sub.add_parser("label", help="token-length labels of the images each ReViT did "
                                           "not train on")
    p.add_argument("models", nargs="+", help="ReViT checkpoint(s): one holdout model, or the k "
                                             "models of a fold split")
    p.add_argument("--out", required=True, help="labels file to write (.pt)")
    p.add_argument("--none-correct", choices=NONE_CORRECT, default="largest",
                   help="label of images no length gets right (default largest)")
    add_run_options(p)
    p.set_defaults(func=cmd_revit_label)

    p = revit_sub.add_parser("train-tla", help="train the Token-Length Assigner and calibrate "
                                               "the adaptive policies")
    p.add_argument("labels", help="labels file from `vitnas revit label`")
    p.add_argument("--revit", required=True, help="the ReViT checkpoint to deploy (its costs)")
    p.add_argument("--out", required=True, help="assigner checkpoint to write (.pt)")
    p.add_argument("--input-size", type=_input_size,
                   help=f"TLA thumbnail resolution, {MIN_INPUT_SIZE} to the images' size "
                        f"(default {DEFAULT_INPUT_SIZE}; --features pixels or both)")
    p.add_argument("--widths", type=_widths,
                   help=f"TLA stage widths, 1 to {MAX_STAGE_WIDTH:,} each, at most "
                        f"{MAX_STAGES} stages (default '16,32,64'; --features pixels or both)")
    p.add_argument("--epochs", type=_assigner_epochs, default=30)
    p.add_argument("--folds", type=_folds, default=5,
                   help=f"cross-fitting folds for the calibration, 2 to {MAX_FOLDS} and at most "
                        "the labelled images (default 5)")
    p.add_argument("--max-loss", type=nonnegative_float, default=1.0,
                   help="calibrate for at most this many points below the full length")
    p.add_argument("--target", choices=["hard", "margin", "correct", "loss"], default="hard",
                   help="what the TLA learns: the smallest correct length (hard, default), "
                        "that label softened by the ReViT's margins (margin), per-length "
                        "correctness (correct) or per-length true-class probability (loss)")
    p.add_argument("--features", choices=["pixels", "stats", "both", "coarse"],
                   default="pixels",
                   help="CNN on the thumbnail (default), cheap image statistics, both, or "
                        "'coarse': a router on the ReViT's own shortest pass (which every "
                        "image then pays)")
    p.add_argument("--temperature", type=positive_float,
                   help="margin temperature of --target margin (logit units, default 1)")
    p.add_argument("--weighting", choices=["none", "balanced", "stakes"],
                   help="per-image loss weights: none (default), inverse label frequency, or "
                        "full weight only where the lengths disagree on correctness")
    p.add_argument("--balance", action="store_true", help="same as --weighting balanced")
    p.add_argument("--bootstrap", type=resamples, default=1000,
                   help="bootstrap resamples of the out-of-fold intervals (default 1000)")
    p.add_argument("--seed", type=seed, default=0)
    add_run_options(p)
    p.set_defaults(func=cmd_revit_train_tla)

    p = revit_sub.add_parser("eval", help="accuracy, FLOPs and measured throughput of every "
                                          "policy and the simple peers (confidence-skip, "
                                          "cascades, ToMe), with intervals")
    p.add_argument("revit", help="ReViT checkpoint")
    p.add_argument("tla", nargs="+", help="assigner checkpoint(s), compared in one run")
    p.add_argument("--out", help="JSON to write, with a .md table and a .png plot beside it")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--repeats", type=_repeats, default=5,
                   help="interleaved timing rounds (default 5; ratios are their median)")
    p.add_argument("--bootstrap", type=resamples, default=1000,
                   help="bootstrap draws of rounds and test images for the intervals "
                        "(default 1000)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the round order and the bootstrap (default 0)")
    p.add_argument("--pool", help="labels file the peers' thresholds are chosen on (default: "
                                  "the one the first assigner was trained on)")
    p.add_argument("--max-loss", type=nonnegative_float,
                   help="the peers' tolerance below the full length on the pool (default: "
                        "the first assigner's)")
    p.add_argument("--tome-rates", type=positive_ints_or_none, default="2,4,6,8,10",
                   help="token merging rates r (tokens merged per block) at the full length, "
                        "whole numbers, e.g. '2,4,6,8,10' (the default); '' for none")
    p.add_argument("--merge-rates", type=positive_ints_or_none, default="",
                   help="ToMe rates the merged peers ('confidence-skip + ToMe', 'fair cascade "
                        "+ ToMe') may use at every length but the shortest, chosen per length "
                        "on the pool with their thresholds, e.g. '2,4,6,8'; '' (the default) "
                        "for none")
    p.add_argument("--test-per-class", type=positive_int, help="first K test images per class")
    p.add_argument("--tla-threshold", type=finite_float,
                   help="override the calibrated TLA threshold")
    p.add_argument("--cascade-threshold", type=probability,
                   help="override the calibrated cascade threshold (a confidence in [0, 1])")
    p.add_argument("--none-correct", choices=NONE_CORRECT, default="largest",
                   help="oracle route of images no length gets right")
    p.add_argument("--fixed-grids", type=distinct_positive_ints,
                   help="fixed token grids to measure, whole numbers, e.g. '3,4,5,6,7,8' "
                        "(default: every grid from the shortest trained one to the native one)")
    add_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no per-round timing lines")
    p.set_defaults(func=cmd_revit_eval)
