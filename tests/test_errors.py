"""The edge's handling of interrupts: a file being written finishes before Ctrl-C acts."""

import os
import signal

import pytest
import torch

from vitnas.checkpoint import save
from vitnas.errors import interrupts_deferred


def test_ctrl_c_inside_the_block_waits_for_it_and_then_interrupts():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)  # reached: the signal was held
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_ctrl_c_still_ignores_it_after_the_block():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_a_checkpoint_write_keeps_the_file_whole(tmp_path, monkeypatch):
    """The interrupt lands mid-write (here: inside torch.save); the file is still written and
    readable, no temp file is left, and the interrupt follows."""
    real_save = torch.save

    def interrupted_save(obj, handle):
        os.kill(os.getpid(), signal.SIGINT)
        real_save(obj, handle)

    monkeypatch.setattr(torch, "save", interrupted_save)
    path = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        save(path, {"format": "x", "weights": torch.ones(3)})
    assert torch.load(path, weights_only=True)["weights"].sum() == 3
    assert list(tmp_path.iterdir()) == [path]


def test_a_write_that_fails_leaves_no_temp_file(tmp_path, monkeypatch):
    def failing_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "state.pt", {"format": "x"})
    assert list(tmp_path.iterdir()) == []
