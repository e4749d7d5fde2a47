"""What every command shares: the one-line error parser, argument types, space options, status
lines. Torch-free, so `vitnas --help` stays instant (torch and the spaces are imported inside the
commands)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from vitnas.formatting import text_table
from vitnas.grammar import plain_digits, plain_number
from vitnas.seeds import SEED_MAX

MAIN_JOB = "vitnas search autoformer-tiny-micro --params 0.4M:0.5M --budget 100 --workers 2"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    print(text_table(rows, columns))


def read_architecture(space, spec: str):
    from vitnas.spaces.base import read_architecture

    return read_architecture(space, spec)


def default_device(args: argparse.Namespace) -> str:
    """``--device``, else cuda when this machine has it."""
    if args.device:
        return args.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def say(message: str) -> None:
    """A status line for a silent phase; on stderr, so stdout stays the result."""
    print(message, file=sys.stderr, flush=True)


def space_options(args: argparse.Namespace) -> dict[str, Any]:
    """The space options given on the command line (unset ones left out): --space-options'
    pairs where a command has it, overridden by the named flags."""
    options = dict(img_size=args.img_size, patch_size=args.patch_size, in_chans=args.in_chans,
                   num_classes=args.num_classes, pool=args.pool, qkv=args.qkv,
                   cls_token=args.cls_token, task=args.task)
    pairs = parse_options(getattr(args, "space_options", None))
    return {**pairs, **{k: v for k, v in options.items() if v is not None}}


def space_from_args(args: argparse.Namespace, command_reads_data: bool = True):
    """The space the flags name. Only NAS-Bench-201 reads data (its accuracy table); a command
    that reads no data of its own (``command_reads_data=False``: sample, info) refuses
    --data-dir for any other space, where it would be silently unused."""
    from vitnas.errors import ConfigError
    from vitnas.spaces import get_space

    if not command_reads_data and args.data_dir is not None and args.space != "nasbench201":
        raise ConfigError(f"--data-dir is read only for nasbench201 here (its accuracy table); "
                          f"{args.space} reads no data: leave it out")
    return get_space(args.space, **space_options(args),
                     data_dir=args.data_dir if args.space == "nasbench201" else None)


def parse_options(text: str | None) -> dict[str, Any]:
    """``patch_size=8,pool=mean,scale=0.5`` -> {"patch_size": 8, "pool": "mean", "scale": 0.5}
    (ints, then finite floats, where they parse; text otherwise)."""
    import math

    from vitnas.errors import ConfigError

    out: dict[str, Any] = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {item!r} is not key=value")
        if key.strip() in out:
            raise ConfigError(f"option {key.strip()!r} is given twice in {text!r}")
        value = value.strip()
        if plain_digits(value[1:] if value[:1] in "+-" else value):
            out[key.strip()] = int(value)
            continue
        if not plain_number(value):  # '٠.٥' or '1_0' stays text: the option then refuses it
            out[key.strip()] = value
            continue
        try:
            number = float(value)
            out[key.strip()] = number if math.isfinite(number) else value
        except ValueError:
            out[key.strip()] = value
    return out


def _command_line(args: argparse.Namespace) -> str:
    """The command that is running, for the files it writes: the process's own arguments when
    it is the ``vitnas`` program, else (``main([...])`` from Python) rebuilt from ``args``."""
    import shlex
    from pathlib import Path

    program = Path(sys.argv[0])
    if program.name == "vitnas" or program.parts[-2:] == ("vitnas", "__main__.py"):
        return "vitnas " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    positional = {"label": ["models"], "train-tla": ["labels"], "eval": ["revit", "tla"]}
    names = positional.get(args.revit_command, [])
    words = ["vitnas", "revit", args.revit_command]
    for name in names:
        value = getattr(args, name)
        words += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    for key, value in vars(args).items():
        if key in names or key in ("func", "command", "revit_command") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, tuple):  # a parsed list option, e.g. --grids 4,6,8
            value = ",".join(str(v) for v in value)
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line on stderr, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind: type, low: float, inclusive: bool = True) -> Any:
    try:
        if not plain_number(text):
            raise ValueError
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and not math.isfinite(value) and not math.isfinite(low):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if (kind is float and not math.isfinite(value)) or value < low or (
            value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}, "
                                         f"got {text}")
    return value


def given(text: str) -> str:
    """An argparse type: a non-blank string (``--ranker ''`` from an unset shell variable must
    not quietly mean "no ranker" and search by another objective)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    return text


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _number(text, int, 1)


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (0 switches a count off, e.g. bootstrap resamples)."""
    return _number(text, int, 0)


def at_most(kind: Any, limit: int, why: str) -> Any:
    """An argparse type: ``kind``, refused above ``limit`` (a count that would run for years
    looks like a hang, not an error)."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be <= {limit:,} ({why}), got {text}")
        return value

    return parse


MAX_RESAMPLES = 100_000
MIN_RESAMPLES = 40


def resamples(text: str) -> int:
    """An argparse type: bootstrap resamples, 0 (no intervals) or 40 to 100,000. A 95%
    percentile interval from fewer than 40 draws is just their extremes (one draw: a point
    shown as an interval); millions take hours and gigabytes of resampled indices."""
    value = _number(text, int, 0)
    if 0 < value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"must be 0 (no intervals) or at least {MIN_RESAMPLES} (a 95% interval from fewer "
            f"draws is only their extremes), got {text}")
    if value > MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_RESAMPLES:,} (intervals are stable "
                                         f"long before), got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    value = _number(text, float, 0, inclusive=False)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {text}")
    return value


def smoothing(text: str) -> float:
    """An argparse type: a label smoothing, 0 <= value < 1."""
    value = _number(text, float, 0, inclusive=True)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be < 1, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (epochs, learning rates)."""
    return _number(text, float, 0, inclusive=False)


# training epochs of one architecture (the recipes here train for 3 to hundreds)
training_epochs = at_most(positive_float, 100_000, "a training recipe runs for hundreds at most")
# a peak learning rate (AdamW's are around 1e-3; past 10 every weight diverges at once)
learning_rate = at_most(positive_float, 10, "AdamW diverges far below that")
# search evaluations (a billion is years of scoring at a second each)
search_budget = at_most(positive_int, 10**9, "each evaluation scores a model")


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0 (a tolerated loss in points, GPUs per worker)."""
    return _number(text, float, 0)


def finite_float(text: str) -> float:
    """An argparse type: any finite number (nan and inf are refused)."""
    return _number(text, float, -math.inf, inclusive=False)


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1] (mutation rates, confidence thresholds)."""
    value = _number(text, float, 0)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be <= 1, got {text}")
    return value


def share(text: str) -> float:
    """An argparse type: a share in (0, 1] (a top fraction, a token share)."""
    value = _number(text, float, 0, inclusive=False)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be <= 1, got {text}")
    return value


def seed(text: str) -> int:
    """An argparse type: a seed, an integer in 0..2^63-1."""
    value = _number(text, int, 0)
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be <= 2^63-1, got {text}")
    return value


def _list_of(kind: Any, what: str, distinct: bool = False) -> Any:
    """A comma-separated list of ``kind``; ``distinct``: a set of settings (grids, rates), where
    a value given twice would silently collapse to one row, so it is refused instead."""
    def parse(text: str) -> tuple:
        items = [item.strip() for item in text.split(",")]
        if not text.strip() or not all(items):
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        try:
            values = tuple(kind(item) for item in items)
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{err} (in {text!r}; {what})") from None
        repeated = sorted({v for v in values if values.count(v) > 1})
        if distinct and repeated:
            raise argparse.ArgumentTypeError(f"{', '.join(map(str, repeated))} given more than "
                                             f"once in {text!r} (each setting once)")
        return values

    return parse


positive_ints = _list_of(positive_int, "integers >= 1")  # e.g. "16,16,32": stage widths
distinct_positive_ints = _list_of(positive_int, "integers >= 1", distinct=True)  # grids, rates
shares = _list_of(share, "numbers in (0, 1]", distinct=True)  # e.g. "0.25,0.5,1": token shares


def positive_ints_or_none(text: str) -> tuple[int, ...]:
    """Distinct ``positive_ints`` (rates), where an empty string means none (``--tome-rates
    ''``)."""
    return () if not text.strip() else distinct_positive_ints(text)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def usable_workers(workers: int, backend: str = "local") -> int:
    """``--workers`` capped at the CPU cores this process may use (a local pool of more
    processes only adds memory and contention), saying so; a Ray cluster counts its own."""
    return _capped("--workers", workers, backend)


def usable_threads(threads: int | None, backend: str = "local") -> int | None:
    """``--threads`` capped the same way: torch threads beyond the cores only contend, and
    ``torch.set_num_threads(10**9)`` would try to start them; a Ray cluster counts its own
    (a worker asking for more CPUs than it has is refused there). None stays unset."""
    return None if threads is None else _capped("--threads", threads, backend)


def _capped(option: str, value: int, backend: str) -> int:
    if backend != "local":
        return value
    cores = usable_cores()
    if value > cores:
        say(f"note: {option} {value} capped at {cores}, the CPU cores this machine has")
        return cores
    return value


def writable(path: str | None, what: str, directory: bool = False,
             inputs: Sequence[str | None] = ()) -> None:
    """Refuse, before any work, an output that cannot be written or that is one of the
    command's ``inputs`` (see ``vitnas.paths.check_writable``); None is nothing to check."""
    if path is not None:
        from vitnas.paths import check_writable

        check_writable(path, what, directory=directory, inputs=inputs)


def check_batch(proxies: Sequence[Any], batch_size: int) -> None:
    """Refuse a proxy batch smaller than a chosen proxy needs (a kernel or statistic across
    samples is undefined on one sample)."""
    from vitnas.errors import ConfigError

    small = [p.spec for p in proxies if batch_size < p.min_batch]
    if small:
        least = max(p.min_batch for p in proxies)
        raise ConfigError(f"--batch-size {batch_size} is too small for {', '.join(small)}: "
                          f"they compare samples, so they need at least {least}")


def check_memory(space, batch_size: int, arch=None, device: str = "cpu",
                 training: bool = False) -> None:
    """Refuse a model and batch that cannot fit in memory before anything is allocated (an
    architecture of the space stands in for a search's candidates)."""
    from vitnas.device import check_fits, model_bytes

    arch = space.sample(0) if arch is None else arch
    check_fits(model_bytes(space, arch, batch_size, training),
               f"{space.name} at {space.img_size} px with --batch-size {batch_size}", device)


def add_space_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="search space name (see `vitnas spaces`)")
    add_space_flags(parser)
    parser.add_argument("--data-dir", help="shared data directory (default: $VITNAS_DATA_DIR, "
                                           "./data, ./shared/data, ../shared/data)")


def add_space_flags(parser: argparse.ArgumentParser, more: bool = False) -> None:
    """The space options every command spells the same way; ``more`` adds --space-options for
    any other key=value option of a space."""
    group = parser.add_argument_group("space options (defaults depend on the space)")
    group.add_argument("--img-size", type=positive_int, help="input resolution")
    group.add_argument("--patch-size", type=positive_int, help="patch size (ViT spaces)")
    group.add_argument("--in-chans", type=positive_int, help="input channels (default 3)")
    group.add_argument("--num-classes", type=positive_int, help="number of classes")
    group.add_argument("--pool", choices=["cls", "mean"], help="class token or mean pooling (ViTs)")
    group.add_argument("--task", choices=["classification", "segmentation"],
                       help="hierarchical (s3-*) spaces: a classifier, or the backbone with the "
                            "FPN decoder's per-pixel logits")
    group.add_argument("--qkv", choices=["per_head", "embed"],
                       help="AutoFormer qkv width: heads x 64 (per_head) or embed dim")
    group.add_argument("--cls-token", choices=["true", "false"],
                       help="AutoFormer: keep a class token with --pool mean (as Auto-Prox's "
                            "ViT-Bench-101 models)")
    if more:
        group.add_argument("--space-options", help="any other space option as key=value pairs, "
                                                   "e.g. 'stride=8' (the flags above win)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads")
    parser.add_argument("--data-dir", help="shared data directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
