"""Progress of long commands: plain lines in a log, a bar on a terminal, nothing with -q."""

import fcntl
import io
import os
import pty
import select
import struct
import termios

import pytest

from credit_risk.cli import progress as progress_module
from credit_risk.cli.progress import duration, progress


@pytest.fixture(autouse=True)
def default_verbosity():
    progress_module.set_verbosity(0)
    yield
    progress_module.set_verbosity(0)


class Clock:
    """A clock the test moves: every reading is `step` seconds after the one before."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_log_gets_a_line_at_the_start_every_interval_and_at_the_end():
    out = io.StringIO()
    with progress("training", 4, "candidates", stream=out, every_s=25,
                  clock=Clock(10)) as p:
        for _ in range(4):
            p.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "training: 0/4 candidates"
    # 10 s per reading: the third advance is 30 s after the start, past the 25 s interval
    assert lines[1] == "training: 3/4 candidates (75%), 0.1 candidates/s, about 10 s left"
    assert lines[-1] == "training: done: 4/4 candidates in 50 s, 0.08 candidates/s"
    assert len(lines) == 3


def test_an_unknown_total_has_counts_and_rate_but_no_time_left():
    out = io.StringIO()
    with progress("scoring", None, "rows", stream=out, every_s=0, clock=Clock(2)) as p:
        p.update(50_000)
        p.update(120_000, 200_000)  # the total learnt on the way
    lines = out.getvalue().splitlines()
    # 2 s per reading: 50,000 rows 2 s after the start, 120,000 after 4 s
    assert lines[1] == "scoring: 50,000 rows, 25,000 rows/s"
    assert lines[2] == "scoring: 120,000/200,000 rows (60%), 30,000 rows/s, about 3 s left"
    assert "left" not in lines[1]


def test_a_failure_says_where_the_work_stopped():
    out = io.StringIO()
    with pytest.raises(RuntimeError), progress("validating", 6, "tables", stream=out,
                                                 clock=Clock(1)) as p:
        p.update(2, 6)
        raise RuntimeError("GX broke")
    assert out.getvalue().splitlines()[-1].startswith("validating: stopped at 2/6 tables in")


def test_quiet_prints_nothing():
    progress_module.set_verbosity(-1)
    out = io.StringIO()
    with progress("training", 2, "candidates", stream=out, every_s=0) as p:
        p.advance(2)
    assert out.getvalue() == ""


@pytest.mark.parametrize("columns", [100, 0])  # 0: a terminal that does not say its width
def test_a_terminal_gets_a_bar_with_count_rate_and_time_left(columns):
    main_fd, tty_fd = pty.openpty()
    fcntl.ioctl(tty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        with os.fdopen(tty_fd, "w", closefd=False) as terminal:
            assert terminal.isatty()
            with progress("training", 3, "candidates", stream=terminal) as p:
                p.advance()
                p.advance()
                p.update(3)
            terminal.flush()
        seen = b""
        while select.select([main_fd], [], [], 0.2)[0]:
            seen += os.read(main_fd, 65536)
    finally:
        os.close(main_fd)
        os.close(tty_fd)
    seen = seen.decode()
    assert "\r" in seen  # redrawn in place, not one line per step
    final = [part for part in seen.split("\r") if part.strip()][-1]
    assert "training: 100%" in final and "3/3" in final
    assert "candidates/s" in final and "<00:00" in final  # rate and time left
    assert "training: 0/3" not in seen  # no plain lines on a terminal


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (45, "45 s"), (185, "3 min 05 s"),
                                               (3720, "1 h 02 min")])
def test_durations_read_at_a_glance(seconds, text):
    assert duration(seconds) == text
