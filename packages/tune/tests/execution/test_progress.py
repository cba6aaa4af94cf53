"""The live trial table: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import io

from shoal.tune.execution._progress import TrialTable
from shoal.tune.experiment.trial import Trial


class Tty(io.StringIO):
    def isatty(self):
        return True


def trials():
    a = Trial("f", {"lr": 0.1}, "t_00000", evaluated_params={"lr": 0.1})
    a.status = Trial.RUNNING
    a.update_last_result({"loss": 0.25, "training_iteration": 3})
    b = Trial("f", {"lr": 0.01}, "t_00001", evaluated_params={"lr": 0.01})
    return [a, b]


def test_table_on_a_terminal():
    out = Tty()
    table = TrialTable(verbose=1, metric="loss", out=out)
    table.maybe_draw(trials(), elapsed=1.5, now=100.0)
    text = out.getvalue()
    assert "Trial status: 1 RUNNING | 1 PENDING" in text
    assert "Trial name  status   lr    iter  loss" in text
    assert "f_t_00000   running  0.1   3     0.25" in text
    table.maybe_draw(trials(), elapsed=1.6, now=100.1)  # within the refresh period: nothing new
    assert out.getvalue() == text
    table.maybe_draw(trials(), elapsed=3.0, now=102.0)
    assert "\x1b[" in out.getvalue()  # redrawn in place


def test_silent_when_not_a_terminal_or_verbose_0():
    out = io.StringIO()
    TrialTable(verbose=1, metric="loss", out=out).maybe_draw(trials(), 1.0, 100.0)
    quiet = Tty()
    TrialTable(verbose=0, metric="loss", out=quiet).maybe_draw(trials(), 1.0, 100.0, force=True)
    assert out.getvalue() == "" and quiet.getvalue() == ""


def test_result_lines_at_verbose_2():
    out = Tty()
    table = TrialTable(verbose=2, metric="loss", out=out)
    t = trials()[0]
    table.result_line(t, t.last_result)
    assert out.getvalue() == "Trial f_t_00000 result: iter=3 loss=0.25\n"
