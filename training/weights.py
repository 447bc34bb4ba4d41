"""Self-contained weights folders: EMA weights, parameters and normalisation stats.

A folder holds
  params.json          the params.Params the model was trained with
  encoding.json        the data encoding and its training-split statistics
  ema.weights.h5       the EMA weights (HDF5 arrays: loading runs no code, no pickle)
  metadata.json        steps, training time, held-out losses, data summary
It is written to a temporary sibling and renamed into place, so a folder under
the final name is always complete.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import params as params_lib
from data import encodings
from training.trainer import build_denoiser

WEIGHTS_FILE = "ema.weights.h5"
FILES = ("params.json", "encoding.json", WEIGHTS_FILE, "metadata.json")


class WeightsError(Exception):
    """A weights folder is missing or damaged; the message says how to get one."""


@dataclasses.dataclass
class LoadedWeights:
    params: params_lib.Params
    encoding: encodings.NoteEncoding
    model: object
    metadata: dict


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)


def export(out_dir, params, encoding, ema_model, metadata, overwrite=False):
    """Writes a weights folder atomically; refuses to replace one unless overwrite."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(out_dir) + ".")
    try:
        _write_json(os.path.join(staging, "params.json"), params.to_dict())
        _write_json(os.path.join(staging, "encoding.json"), encoding.get_config())
        _write_json(os.path.join(staging, "metadata.json"), metadata)
        ema_model.save_weights(os.path.join(staging, WEIGHTS_FILE))
        os.chmod(staging, 0o755)
        if os.path.exists(out_dir):
            # Keep the old folder until the new one is in place.
            retired = out_dir + ".old"
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(out_dir, retired)
            os.replace(staging, out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def load(weights_dir) -> LoadedWeights:
    """Loads a weights folder, or raises WeightsError with a one-line remedy."""
    how = ("train one with `python train.py --export=DIR`, or restore the shipped "
           "weights with `git checkout -- weights`")
    if not os.path.isdir(weights_dir):
        raise WeightsError(f"no weights folder at {weights_dir}: {how}")
    missing = [name for name in FILES if not os.path.isfile(os.path.join(weights_dir, name))]
    if missing:
        raise WeightsError(f"weights folder {weights_dir} lacks {', '.join(missing)}: {how}")
    try:
        with open(os.path.join(weights_dir, "params.json"), encoding="utf-8") as handle:
            params = params_lib.Params.from_dict(json.load(handle))
        with open(os.path.join(weights_dir, "encoding.json"), encoding="utf-8") as handle:
            encoding = encodings.from_config(json.load(handle))
        with open(os.path.join(weights_dir, "metadata.json"), encoding="utf-8") as handle:
            metadata = json.load(handle)
        model = build_denoiser(params, encoding.num_features)
        model.load_weights(os.path.join(weights_dir, WEIGHTS_FILE))
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"weights folder {weights_dir} is damaged ({reason}): {how}") from None
    return LoadedWeights(params=params, encoding=encoding, model=model, metadata=metadata)
