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


def map_jobs(function, jobs, workers: int = 2, desc: str = "", enabled: bool = True):
    """Yields function(job) for each job (in completion order), on `workers`
    processes when there is more than one job, with a progress bar.

    `function` must be importable (module level): the pool uses spawn, not
    fork, because the parent may already run TensorFlow threads.
    """
    jobs = list(jobs)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, len(jobs))) as pool:
            yield from bar(pool.imap_unordered(function, jobs), total=len(jobs), desc=desc,
                           enabled=enabled)
    else:
        for job in bar(jobs, desc=desc, enabled=enabled):
            yield function(job)
