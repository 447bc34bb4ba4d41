"""Atomic cache folders: built in a temporary sibling, renamed into place whole."""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

from data.corpora import TEST, TRAIN


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


@dataclasses.dataclass
class Prepared:
    """A built cache: its two saved splits, the fitted statistics and the summary.

    Subclasses add their domain's properties and `summary_text`.
    """
    train_path: str
    test_path: str
    stats: dict
    encoding: object  # a data.encodings encoding fitted with `stats`
    summary: dict
    cache_path: str

    @classmethod
    def load(cls, cache_path: str):
        from data import encodings
        with open(os.path.join(cache_path, "summary.json"), encoding="utf-8") as handle:
            summary = json.load(handle)
        with open(os.path.join(cache_path, "stats.json"), encoding="utf-8") as handle:
            stats = json.load(handle)
        return cls(train_path=os.path.join(cache_path, TRAIN),
                   test_path=os.path.join(cache_path, TEST), stats=stats,
                   encoding=encodings.get_encoding(summary["encoding"], stats),
                   summary=summary, cache_path=cache_path)

    def num_examples(self, split: str) -> int:
        return int(self.summary["examples"][split])

    def load_split(self, split: str):
        """The saved split as a tf.data.Dataset of known cardinality."""
        import tensorflow as tf
        if split not in (TRAIN, TEST):
            raise ValueError(f"unknown split {split!r}; choose one of {TRAIN}, {TEST}")
        path = self.train_path if split == TRAIN else self.test_path
        return tf.data.Dataset.load(path).apply(
            tf.data.experimental.assert_cardinality(self.num_examples(split)))

    def summary_text(self) -> str:
        raise NotImplementedError


def file_counts(sources: int, corpus_skipped, skipped: list) -> dict:
    """summary.json's file counts: `sources` found and listed, `corpus_skipped`
    (corpora.Skipped) dropped while listing, `skipped` ({"file", "reason"})
    all the skipped entries. A folder that could not be listed (a name ending
    in "/") is no file: it is counted apart."""
    folders = sum(1 for entry in skipped if entry["file"].endswith("/"))
    dropped_files = sum(1 for entry in corpus_skipped if not entry.name.endswith("/"))
    return {"files_listed": sources + dropped_files, "files_skipped": len(skipped) - folders,
            "folders_unreadable": folders}


def _folders_text(count: int) -> str:
    return f"; {count} folder{'s' if count > 1 else ''} unreadable" if count else ""


def source_lines(summary: dict, max_skipped_lines: int = 20) -> list:
    """The summary lines both domains print: the cache, the files and the skipped ones."""
    lines = [
        f"cache: {summary['cache_path']} ("
        + ("reused" if summary.get("reused") else
           f"built in {summary.get('build_seconds', 0):.1f} s") + ")",
        f"files: {summary['files_listed']} listed, {summary['files_read']} read, "
        f"{summary['files_skipped']} skipped"
        + _folders_text(summary.get("folders_unreadable", 0)),
    ]
    for entry in summary["skipped"][:max_skipped_lines]:
        lines.append(f"  skipped {entry['file']}: {entry['reason']}")
    if len(summary["skipped"]) > max_skipped_lines:
        lines.append(f"  ... and {len(summary['skipped']) - max_skipped_lines} more "
                     "(see summary.json)")
    return lines
