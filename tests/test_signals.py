"""SIGTERM and Ctrl-C become one exception, unwinding cleans up, handlers are restored.

(tests/test_resume.py stops real runs with both signals and resumes them exactly.)
"""
import os
import signal

import pytest

from lth_tf.experiment import signals


@pytest.mark.parametrize("signum, name, code", [(signal.SIGTERM, "SIGTERM", 143), (signal.SIGINT, "SIGINT", 130)])
def test_a_stop_signal_raises_stopped_and_cleanup_runs_undisturbed(signum, name, code):
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    cleaned = []
    with pytest.raises(signals.Stopped) as e:
        with signals.stop_on_signals():
            try:
                os.kill(os.getpid(), signum)
                for _ in range(1000):  # the handler runs at the next bytecode
                    pass
                pytest.fail("not stopped")
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal while unwinding is ignored
                os.kill(os.getpid(), signal.SIGINT)
                cleaned.append(True)
    assert (e.value.name, e.value.exit_code, str(e.value)) == (name, code, f"stopped by {name}")
    assert isinstance(e.value, KeyboardInterrupt)
    assert cleaned == [True]
    assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == before
