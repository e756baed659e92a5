"""`RunDir.lock`: one owner at a time, and nothing left behind by a run that made no directory."""

import fcntl
import os

import pytest

from tfp_vae import rundir
from tfp_vae.rundir import RunBusyError, RunDir


def test_a_lock_that_made_no_run_directory_leaves_no_lock_file_or_new_folder(tmp_path):
    run = RunDir(tmp_path / "new" / "deeper" / "run")
    with pytest.raises(ValueError, match="a check failed"), run.lock():
        assert run.lock_file.is_file()
        raise ValueError("a check failed")
    assert list(tmp_path.iterdir()) == []  # neither .run.lock nor new/deeper/
    with run.lock():
        pass  # a lock released without creating the run directory
    assert list(tmp_path.iterdir()) == []


def test_a_lock_keeps_its_file_beside_a_run_directory_and_folders_others_use(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "other").mkdir()
    run = RunDir(tmp_path / "runs" / "run")
    with run.lock():
        run.path.mkdir()
    assert run.lock_file.is_file()
    failed = RunDir(tmp_path / "runs" / "sub" / "failed")
    with pytest.raises(RuntimeError), failed.lock():
        raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [".run.lock", "other",
                                                                    "run"]


def test_a_busy_lock_is_not_removed_by_the_process_it_refuses(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        for _ in range(2):
            with pytest.raises(RunBusyError, match=rf"pid {os.getpid()}\)"), run.lock():
                pass
            assert run.lock_file.is_file()  # still the holder's file, still locked
    assert not run.lock_file.exists()


def test_a_lock_file_removed_while_being_opened_is_not_taken(tmp_path, monkeypatch):
    """The holder removes its file while a second process has it open: that process must lock
    the new file at the path, not the removed one (two owners otherwise)."""
    run = RunDir(tmp_path / "run")
    real_flock, calls = fcntl.flock, []

    def flock_after_the_holder_left(handle, operation):
        if not calls:  # the first open file is unlinked before it is locked
            run.lock_file.unlink()
        calls.append(handle)
        return real_flock(handle, operation)

    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_the_holder_left)
    with run.lock():
        run.path.mkdir()
        assert len(calls) == 2 and run.lock_file.read_text() == f"{os.getpid()}\n"
    monkeypatch.undo()
    other = os.open(run.lock_file, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the file at the path
    finally:
        os.close(other)
