"""One look for the data pipeline's progress bars and status lines (stderr,
so they never mix with what a command prints on stdout)."""

import sys

from tqdm import tqdm


def bar(iterable, total=None, desc="", enabled=True):
    """A tqdm bar over `iterable`, or the iterable itself when disabled."""
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="file", dynamic_ncols=True,
                file=sys.stderr, mininterval=0.5)


def note(message: str, enabled: bool = True) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
