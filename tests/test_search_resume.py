"""A search killed with SIGKILL keeps every finished evaluation and, run again, resumes to the
answer an uninterrupted search gives."""

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from vitnas.search import Constraints, EvolutionConfig, SearchConfig, parse_window, run_search

CONFIG = SearchConfig(
    proxies=("nwot", "synflow"), budget=24, population=6, dataset="gaussian", batch_size=4,
    constraints=Constraints(params=parse_window("0.4M:0.5M", "params")),
    evolution=EvolutionConfig(parents=3, mutations=2, crossovers=2))

CHILD = """
import sys
sys.path.insert(0, sys.argv[2])
from test_search_resume import CONFIG
from vitnas.search import run_search
run_search("autoformer-tiny-micro", CONFIG, store=sys.argv[1], threads=1)
"""


def stored_rows(db) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_resume_after_sigkill_keeps_finished_evaluations_and_gives_the_same_answer(tmp_path):
    db = tmp_path / "killed.sqlite"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(Path(__file__).parent)])
    deadline = time.monotonic() + 120
    while stored_rows(db) < 2 * 8 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert child.poll() is None, "the search finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    kept = stored_rows(db)
    assert kept >= 16 and kept % 2 == 0  # both proxies of an evaluation commit together

    resumed = run_search("autoformer-tiny-micro", CONFIG, store=db, threads=1)
    assert resumed.reused == kept // 2
    assert resumed.computed == CONFIG.budget - kept // 2
    uninterrupted = run_search("autoformer-tiny-micro", CONFIG, store=":memory:", threads=1)
    assert [(e.candidate.key, e.scores) for e in resumed.evaluations] == [
        (e.candidate.key, e.scores) for e in uninterrupted.evaluations]
    assert resumed.best_arch == uninterrupted.best_arch
