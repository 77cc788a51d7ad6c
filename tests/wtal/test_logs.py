"""Stage scripts log to their rule's log file and clean up when they are terminated."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import sys, tempfile, time
    from pathlib import Path
    from wtal.logs import to_log_file

    to_log_file(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=sys.argv[2]) as tmp:
        (Path(tmp) / "half-written.npy").write_bytes(b"x" * 100)
        print("ready", flush=True)
        time.sleep(60)
""")


def test_sigterm_runs_the_cleanup_of_a_stage_script(tmp_path: Path) -> None:
    """SIGTERM (a cancelled job, scancel) ends the script as an exception would: its
    temporary folder is removed, the log says why, and the exit status is 128 + 15."""
    log = tmp_path / "stage.log"
    with subprocess.Popen([sys.executable, "-c", SCRIPT, str(log), str(tmp_path)],
                          stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert len(list(tmp_path.glob(".stage-*"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    assert list(tmp_path.glob(".stage-*")) == []
    deadline = time.time() + 5
    while "terminated by signal 15" not in log.read_text() and time.time() < deadline:
        time.sleep(0.1)
    assert "terminated by signal 15" in log.read_text()
