"""Self-contained weights folders: EMA weights, parameters and normalisation stats.

A folder holds
  params.json          the params.Params the model was trained with
  encoding.json        the data encoding and its training-split statistics
  ema.weights.h5       the EMA weights (HDF5 arrays: loading runs no code, no pickle),
                       float32, or float16 to halve the file (`store_as`)
  metadata.json        steps, training time (this run and in all), held-out losses,
                       data summary
  guide/               optional: the autoguidance network (Karras et al. 2024), a
                       weights folder of a smaller, shorter-trained model of the
                       same data (`train.py --preset=midi_guide --export=W/guide`),
                       used when params.guidance is not 1; re-exporting W keeps
                       it where it can still guide the new model
It is written to a temporary sibling and renamed into place, so a folder under
the final name is always complete.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import numpy as np

import params as params_lib
from data import encodings

WEIGHTS_FILE = "ema.weights.h5"
FILES = ("params.json", "encoding.json", WEIGHTS_FILE, "metadata.json")
GUIDE_DIR = "guide"
# What a guide must share with the model it guides: they are called on the
# same inputs and their outputs are mixed.
GUIDE_MUST_MATCH = ("domain", "seq_len", "prediction", "schedule", "timesteps",
                    "self_condition")
STORAGE_DTYPES = ("float32", "float16")


class WeightsError(Exception):
    """A weights folder is missing or damaged; the message says how to get one."""


@dataclasses.dataclass
class LoadedWeights:
    params: params_lib.Params
    encoding: encodings.NoteEncoding
    model: object
    metadata: dict
    guide: object = None  # the autoguidance network, once load_guide has read it


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)


def _storage_dtype(dtype):
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"unknown weights dtype {dtype!r}; choose {' or '.join(STORAGE_DTYPES)}")
    return np.dtype(dtype)


def store_as(weights_file, dtype):
    """Rewrites the floating-point arrays of a .weights.h5 file in `dtype`, atomically.

    Loading assigns them to the model's float32 variables, so float16 only
    rounds the stored values (11 significant bits) and halves the file. An
    array beyond float16's range is refused and the file left as it was.
    """
    import h5py

    target = _storage_dtype(dtype)
    handle, staging = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(weights_file)),
                                       suffix=".h5")
    os.close(handle)

    def copy(source, destination):
        destination.attrs.update(source.attrs)
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, destination.create_group(name))
                continue
            values = item[()]
            if np.issubdtype(values.dtype, np.floating):
                with np.errstate(over="ignore"):  # an overflow is refused below
                    cast = values.astype(target)
                if not np.array_equal(np.isfinite(cast), np.isfinite(values)):
                    raise ValueError(f"{weights_file}: {item.name} has values beyond "
                                     f"{dtype}'s range (largest {np.nanmax(np.abs(values)):.3g})")
                values = cast
            destination.create_dataset(name, data=values).attrs.update(item.attrs)

    try:
        with h5py.File(weights_file, "r") as source, h5py.File(staging, "w") as destination:
            copy(source, destination)
        shutil.copymode(weights_file, staging)  # mkstemp's file is private (0600)
        os.replace(staging, weights_file)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def _guide_mismatch(guide_params, guide_encoding, params, encoding_config):
    """What differs between a guide and the model it would guide (empty: it fits)."""
    differ = [name for name in GUIDE_MUST_MATCH
              if getattr(guide_params, name) != getattr(params, name)]
    if guide_encoding != encoding_config:
        differ.append("encoding")
    return differ


def _keep_guide(out_dir, staging, params, encoding):
    """Copies out_dir's guide/ into the new folder where it can guide the new
    model; returns a line saying what happened to it (None: there was none)."""
    guide_dir = os.path.join(out_dir, GUIDE_DIR)
    if not os.path.isdir(guide_dir):
        return None
    # (Any other OSError stops the export with the old folder whole: a guide
    # is dropped for what it holds or lacks, never because a read failed.)
    try:
        with open(os.path.join(guide_dir, "params.json"), encoding="utf-8") as handle:
            params_text = handle.read()
        with open(os.path.join(guide_dir, "encoding.json"), encoding="utf-8") as handle:
            encoding_text = handle.read()
    except FileNotFoundError as error:
        return f"dropped {guide_dir}: damaged ({error})"
    try:
        guide_params = params_lib.Params.from_dict(json.loads(params_text))
        guide_encoding = encodings.from_config(json.loads(encoding_text))
    except (ValueError, KeyError, TypeError) as error:
        return f"dropped {guide_dir}: damaged ({error})"
    differ = _guide_mismatch(guide_params, guide_encoding.get_config(), params,
                             encoding.get_config())
    if differ:
        return (f"dropped {guide_dir}: its {', '.join(differ)} differ from the new "
                "model's, so it cannot guide it")
    # A copy, not a move: the old folder stays whole until the new one is in place.
    shutil.copytree(guide_dir, os.path.join(staging, GUIDE_DIR))
    return f"kept {guide_dir} (same data and objective)"


def export(out_dir, params, encoding, ema_model, metadata, overwrite=False,
           dtype="float32"):
    """Writes a weights folder atomically; refuses to replace one unless overwrite.

    dtype: how the weights are stored ("float16" halves the file; `store_as`).
    A guide/ in the folder replaced is kept when it can guide the new model.
    """
    out_dir = os.path.abspath(out_dir)
    _storage_dtype(dtype)  # refused before anything is written
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
        if dtype != "float32":
            store_as(os.path.join(staging, WEIGHTS_FILE), dtype)
        os.chmod(staging, 0o755)
        guide_note = _keep_guide(out_dir, staging, params, encoding)
        if guide_note:
            print(guide_note)
        if os.path.exists(out_dir):
            # Keep the old folder until the new one is in place.
            retired = out_dir + ".old"
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(out_dir, retired)
            try:
                os.replace(staging, out_dir)
            except OSError:
                os.replace(retired, out_dir)  # put the old folder back
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


_HOW = ("train one with `python train.py --export=DIR`, or restore the shipped "
        "weights with `git checkout -- weights`")


def check_folder(weights_dir) -> None:
    """Raises WeightsError unless weights_dir is a folder holding every file of
    an export (a cheap check, before anything is loaded)."""
    if not os.path.isdir(weights_dir):
        raise WeightsError(f"no weights folder at {weights_dir}: {_HOW}")
    missing = [name for name in FILES if not os.path.isfile(os.path.join(weights_dir, name))]
    if missing:
        raise WeightsError(f"weights folder {weights_dir} lacks {', '.join(missing)}: {_HOW}")


def load(weights_dir) -> LoadedWeights:
    """Loads a weights folder, or raises WeightsError with a one-line remedy."""
    check_folder(weights_dir)
    # (Imported here: TensorFlow takes seconds to load, and check_folder
    # answers a missing or incomplete folder before it does.)
    from training.trainer import build_denoiser

    try:
        with open(os.path.join(weights_dir, "params.json"), encoding="utf-8") as handle:
            params = params_lib.Params.from_dict(json.load(handle))
        with open(os.path.join(weights_dir, "encoding.json"), encoding="utf-8") as handle:
            encoding = encodings.from_config(json.load(handle))
        with open(os.path.join(weights_dir, "metadata.json"), encoding="utf-8") as handle:
            metadata = json.load(handle)
        model = build_denoiser(params, encoding.num_features,
                               encoding.categorical_groups, encoding.rhythm_values)
        model.load_weights(os.path.join(weights_dir, WEIGHTS_FILE))
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise WeightsError(f"weights folder {weights_dir} is damaged ({reason}): {_HOW}") from None
    return LoadedWeights(params=params, encoding=encoding, model=model, metadata=metadata)


def statistics_warning(weights_dir, theirs, ours) -> str:
    """One line when fine-tuning `weights_dir` (encoding `theirs`) on data
    encoded with other statistics (`ours`), else "": the codes would mean
    other notes than the ones its weights learned (another pitch range,
    other duration classes)."""
    if theirs.get_config() == ours.get_config():
        return ""
    return (f"warning: {weights_dir}'s encoding statistics differ from the ones fitted on "
            f"this data, so its codes now stand for other notes; pass "
            f"--encoding_from={weights_dir} to keep them")


def load_guide(guide_dir, loaded):
    """The network of weights folder guide_dir, checked to read what `loaded` reads."""
    guide = load(guide_dir)
    differ = _guide_mismatch(guide.params, guide.encoding.get_config(), loaded.params,
                             loaded.encoding.get_config())
    if differ:
        raise WeightsError(f"guide {guide_dir} cannot guide this model: its "
                           f"{', '.join(differ)} differ (train the guide on the same "
                           "data with the same objective)")
    return guide.model


def attach_guide(loaded, weights_dir, guide_dir=None, guidance_asked=False):
    """Sets loaded.guide when loaded.params asks for guidance: the network in
    guide_dir, else in weights_dir's guide/ folder.

    Without either, guidance is refused if the caller asked for it
    (guidance_asked, e.g. an explicit --guidance flag: ValueError), else
    turned off in loaded.params. Returns a note for the user then, else None.
    """
    if loaded.params.guidance == 1.0:
        return None
    folder = guide_dir or os.path.join(weights_dir, GUIDE_DIR)
    if guide_dir or os.path.isdir(folder):
        loaded.guide = load_guide(folder, loaded)
        return None
    if guidance_asked:
        raise ValueError(f"--guidance={loaded.params.guidance:g} needs a guide network and "
                         f"{folder} does not exist; pass --guide=DIR or --guidance=1")
    loaded.params = loaded.params.replace(guidance=1.0)
    return (f"note: {folder} does not exist, so no autoguidance (train a guide with "
            f"`python train.py --preset=midi_guide --export={folder}`)")
