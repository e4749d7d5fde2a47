"""What vitnas recommends when a user names nothing, and the measurement behind it (kept free
of torch: the CLI's help text reads it without importing the library).

Chosen on the ViT-Bench-101 AutoFormer dev half among every scoreboard row, the shape baselines
(params, flops, depth, width, logsize, depth>params) included: the row whose worst KD label
(CIFAR-100, Flowers, Chaoyang with distillation) is least below that label's best shape
baseline. A user's task is unknown, and which shape wins flips with the task (depth on
CIFAR-100, width and #params on Flowers and Chaoyang), so the default must not lose badly on
any. #params won (0.13 below the best shape on CIFAR-100 KD, its worst label); no
training-free proxy or ensemble did better on that rule. ``results/vitbench101/selection.json``
records the choice, every row's worst gap and the command that made it
(``benchmarks/vitbench101_scoreboard.py``). A user with a few trained models does better with
``vitnas calibrate`` (a ranker fitted to their task); one with a minute per candidate can rank
by brief training (``brief``, ``results/brief/``).
"""

DEFAULT_SEARCH_PROXY = "params"
DEFAULT_SEARCH_REASON = (
    "the default objective: on ViT-Bench-101's dev half no training-free proxy beat #params "
    "on its worst task (results/vitbench101/selection.json); with a few trained models, "
    "`vitnas calibrate` fits one to your task (--ranker)")
