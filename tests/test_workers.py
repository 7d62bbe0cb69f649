"""Forked workers die on SIGTERM whatever handler their parent has; pools end; main() gives
the caller's SIGTERM handler back."""

from __future__ import annotations

import multiprocessing as mp
import signal
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

import pytest

from conceptkit.cli import _on_sigterm, main


def _disposition(_: int) -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _initializers() -> dict[str, tuple[Callable[..., None], tuple[Any, ...]]]:
    from conceptkit.converters import _parallel

    from conceptkit.convert import _image
    from conceptkit.explain import run as explain_run
    from conceptkit.validate import rows

    options = types.SimpleNamespace(workers=2)
    return {
        "explain": (explain_run._init_worker, ()),
        "convert": (_image._start_worker, ()),
        "readers": (_parallel._start, (lambda item: None, options)),
        "validate": (rows.init_worker, (None,)),
    }


@pytest.mark.parametrize("pool", ["explain", "convert", "readers", "validate"])
def test_every_pool_initializer_restores_sigterm(pool: str) -> None:
    init, args = _initializers()[pool]
    before = signal.signal(signal.SIGTERM, _on_sigterm)  # what `conceptkit ...` installs
    try:
        with mp.get_context("fork").Pool(1, initializer=init, initargs=args) as p:
            assert p.map(_disposition, [0]) == [True]
            p.close()
            p.join()
    finally:
        signal.signal(signal.SIGTERM, before)


SCRIPT = textwrap.dedent(
    """
    import signal
    import numpy as np
    from conceptkit.explain import run as R
    from conceptkit.explain.run import ExplainSettings

    def unit(u):  # the search itself is not under test
        return u

    signal.signal(signal.SIGTERM, lambda *a: None)  # a parent that does not die on SIGTERM
    R._search_one = unit
    for _ in range(5):
        got = R.explain_layer(
            None, np.zeros((9, 1, 1, 1), np.float32), np.zeros(9), "category",
            ExplainSettings(workers=2),
        )
        assert got == list(range(9)), got
    import multiprocessing
    assert not multiprocessing.active_children()
    print("ok")
    """
)


def test_explain_pool_ends_when_the_parent_ignores_sigterm() -> None:
    """multiprocessing.Pool ends its workers by SIGTERM; with a handler inherited that does not
    end them, its parent waited for ever (the hang this guards against)."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_main_gives_the_callers_sigterm_handler_back() -> None:
    def mine(signum: int, frame: Any) -> None:
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(SystemExit):
            main(["no-such-command"])
        assert signal.getsignal(signal.SIGTERM) is mine
        main(["formats"])
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
