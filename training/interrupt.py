"""Ctrl-C and SIGTERM end a training run with a checkpoint instead of losing
the steps since the last one."""

import contextlib
import signal
import sys


@contextlib.contextmanager
def stop_on_signals(stop_requested, signals=(signal.SIGINT, signal.SIGTERM)):
    """While inside, the first SIGINT (Ctrl-C) or SIGTERM sets `stop_requested`
    (the trainer then checkpoints after the current step and stops); a second
    one acts as usual, at once."""
    def request_stop(signum, frame):
        stop_requested.set()
        signal.signal(signum, previous[signum])
        print(f"\n{signal.Signals(signum).name}: stopping after this step with a "
              "checkpoint (send it again to stop at once)", file=sys.stderr)

    previous = {signum: signal.getsignal(signum) for signum in signals}
    for signum in signals:
        signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
