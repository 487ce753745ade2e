"""Stopping a run cleanly on SIGTERM (a scheduler, `kill`, the multi-worker launcher) or Ctrl-C (SIGINT).

Inside `stop_on_signals()`, either signal raises `Stopped` in the main thread at the next Python bytecode,
which in a training round is between two calls into TensorFlow (a step, or `steps_per_execution` steps).
The exception unwinds like any other: a file being written is dropped (store.atomic_write writes a
temporary and renames it, so the old file stays), locks are released by their `with` blocks, and the
round's last backup (written after each eval_every chunk) is kept, so the same command resumes there.
Further SIGTERM/SIGINT are ignored while it unwinds, so a second Ctrl-C cannot cut the clean-up short.

    with signals.stop_on_signals():
        run()                        # raises signals.Stopped (a KeyboardInterrupt) on SIGTERM or SIGINT
"""
from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """Raised by a stop signal; `name` (e.g. "SIGTERM") and `exit_code` (128 + signal number, as a shell
    reports a process killed by it)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {self.name}")


@contextlib.contextmanager
def stop_on_signals(signums=STOP_SIGNALS):
    """Turns `signums` into `Stopped` while inside; restores the previous handlers on the way out.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        for s in signums:  # unwinding (lock release, temporary-file removal) must not be interrupted
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
