"""Atomic cache folders: built in a temporary sibling, renamed into place whole."""

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def building(cache_path: str):
    """Yields a temporary folder that becomes `cache_path` when the block succeeds.

    A crash or an exception leaves no half-written cache behind; a concurrent
    build of the same cache that finished first wins (its content is identical).
    """
    parent = os.path.dirname(os.path.abspath(cache_path))
    os.makedirs(parent, exist_ok=True)
    temp_path = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(cache_path) + ".tmp-")
    os.chmod(temp_path, 0o755)  # mkdtemp is owner-only; the cache is shared
    try:
        yield temp_path
        try:
            os.rename(temp_path, cache_path)
        except OSError:
            if not os.path.exists(os.path.join(cache_path, "summary.json")):
                raise
    finally:
        if os.path.exists(temp_path):
            shutil.rmtree(temp_path, ignore_errors=True)


def write_json(folder: str, contents: dict) -> None:
    """Writes {file name: JSON-able value} into `folder`."""
    for name, content in contents.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=1)
