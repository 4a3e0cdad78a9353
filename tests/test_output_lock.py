"""Tests of the output folder's lock: a second run is refused, a killed run's lock is gone."""

import signal
import subprocess
import sys

import pytest

from catsdogs_helpers.errors import InputError
from catsdogs_helpers.output_lock import LOCK_FILE, lock_output_dir, unlock_output_dir

HOLD_THE_LOCK = """
import sys, time
from catsdogs_helpers.output_lock import lock_output_dir
lock_output_dir(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def _start_holder(output_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(output_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_run_into_the_same_folder_is_refused_until_the_first_one_dies(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(InputError) as error:
            lock_output_dir(tmp_path)
        message = str(error.value)
        assert f"Another run is writing into {tmp_path} (it holds {tmp_path / LOCK_FILE}" in message
        assert "pass another output folder" in message and f"Received: output_dir={str(tmp_path)!r}" in message
    finally:
        holder.send_signal(signal.SIGKILL)  # Killed, as a run can be: it cannot release anything itself.
        holder.wait()
    assert lock_output_dir(tmp_path) == tmp_path.resolve() / LOCK_FILE
    unlock_output_dir(tmp_path)


def test_the_same_process_may_lock_again_and_others_may_after_it_unlocks(tmp_path):
    lock_output_dir(tmp_path)
    lock_output_dir(tmp_path)  # A notebook running its first cells again.
    unlock_output_dir(tmp_path)
    holder = _start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
