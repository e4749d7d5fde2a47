"""What vitnas recommends when a user names nothing, and the measurement behind it (kept free
of torch: the CLI's help text reads it without importing the library).

Chosen on the ViT-Bench-101 AutoFormer dev half: the highest Kendall tau of every proxy and named
ensemble there, #params and FLOPs excluded. Claimed on its test half and on PiT in the README;
``results/vitbench101/selection.json`` records the choice and the command that made it
(``benchmarks/vitbench101_scoreboard.py``).
"""

DEFAULT_SEARCH_PROXY = "lswag"
