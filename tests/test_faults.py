"""Distribution and faults, each in fresh processes as a user would meet them:
a mirrored step equals a single-device step, two local workers train together,
a SIGKILLed run resumes to identical weights, and a kill inside a checkpoint
write leaves the previous checkpoint usable."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}

pytestmark = pytest.mark.slow

# A one-block transformer on midi_tiny (also test_training.tiny_params): these
# runs test the command line and its faults, which need a model that traces
# fast (26 weight arrays, where the tiny U-Net has 194), not the U-Net.
TINY_CHANGES = {"seq_len": 16, "model": "transformer", "num_layers": 1}
TINY_MODEL = ["--preset=midi_tiny",
              *(f"--{name}={value}" for name, value in TINY_CHANGES.items())]


def tiny_data(folder):
    """A small folder dataset (cached once per folder by train.py)."""
    import pretty_midi

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for index in range(10):
        midi = pretty_midi.PrettyMIDI()
        instrument = pretty_midi.Instrument(0)
        start = 0.0
        for _ in range(48):
            instrument.notes.append(pretty_midi.Note(
                80, int(rng.integers(55, 75)), start, start + 0.25))
            start += 0.25
        midi.instruments.append(instrument)
        midi.write(os.path.join(folder, f"piece_{index}.mid"))
    return folder


@pytest.fixture(scope="module")
def data_flags(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    folder = tiny_data(str(base / "midi"))
    return [*TINY_MODEL, "--dataset=folder", f"--data_dir={folder}",
            "--test_fraction=0.3", f"--cache_dir={base / 'cache'}", "--progress=false",
            "--sample_every=0", "--seed=3"]


def train(args, check=True, timeout=300, env=None):
    result = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env or ENV,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def exported_weights(folder):
    import h5py

    arrays = []
    with h5py.File(os.path.join(folder, "ema.weights.h5"), "r") as handle:
        handle.visititems(lambda name, item: arrays.append((name, item[()]))
                          if isinstance(item, h5py.Dataset) else None)
    return dict(arrays)


def assert_same_weights(folder_a, folder_b):
    a, b = exported_weights(folder_a), exported_weights(folder_b)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# Both kill tests interrupt this run and must end with its uninterrupted weights.
KILL_STEPS = ["--train_steps=12", "--ckpt_every=2", "--eval_every=1000"]


@pytest.fixture(scope="module")
def straight_weights(data_flags, tmp_path_factory):
    base = tmp_path_factory.mktemp("straight")
    train([*data_flags, *KILL_STEPS, f"--model_dir={base / 'run'}",
           f"--export={base / 'weights'}"])
    return base / "weights"


def test_sigkill_then_resume_gives_identical_weights(data_flags, straight_weights, tmp_path):
    model_dir = tmp_path / "killed"
    command = [sys.executable, "train.py", *data_flags, *KILL_STEPS, f"--model_dir={model_dir}",
               f"--export={tmp_path / 'killed_weights'}"]
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    state = model_dir / "checkpoints" / "checkpoint"
    while time.time() < deadline and process.poll() is None:
        if state.exists() and "ckpt-" in state.read_text():
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = state.read_text()
    assert "ckpt-12" not in killed_at, "the run finished before it was killed"

    resumed = train([*data_flags, *KILL_STEPS, f"--model_dir={model_dir}",
                     f"--export={tmp_path / 'killed_weights'}"])
    assert "resumed from step" in resumed.stdout
    assert_same_weights(straight_weights, tmp_path / "killed_weights")


KILL_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    from unittest import mock
    from tensorflow.python.checkpoint import checkpoint_management as management
    real = management.update_checkpoint_state_internal
    calls = []
    def kill_on_second_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the new checkpoint's files are written, not yet recorded
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    management.update_checkpoint_state_internal = kill_on_second_save
    sys.argv = ["train.py"] + sys.argv[1:]
    import runpy
    runpy.run_path("train.py", run_name="__main__")
""")


def test_kill_inside_checkpoint_write_keeps_previous_checkpoint(data_flags, straight_weights,
                                                               tmp_path):
    model_dir = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *data_flags, *KILL_STEPS,
                             f"--model_dir={model_dir}"], cwd=ROOT, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    state = (model_dir / "checkpoints" / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-2"' in state
    resumed = train([*data_flags, *KILL_STEPS, f"--model_dir={model_dir}",
                     f"--export={tmp_path / 'weights'}"])
    assert "resumed from step 2" in resumed.stdout
    assert_same_weights(straight_weights, tmp_path / "weights")


# The shipped architecture on purpose (not TINY_MODEL): its layers must give
# the same step whether the batch is split over replicas or not.
ONE_STEP = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    from training import distribute
    logical = int(sys.argv[1])
    distribute.split_cpu(logical)
    tf.config.experimental.enable_op_determinism()
    import params
    from training import trainer
    p = params.get_preset("midi_tiny").replace(seq_len=16, batch_size=4, warmup_steps=0)
    strategy = distribute.choose_strategy("mirrored" if logical > 1 else "default")
    t = trainer.Trainer(p, 3, sys.argv[2], strategy)
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        {"notes": rng.uniform(-1, 1, (16, 16, 3)).astype(np.float32)})
    t.attach(data)
    t.restore_or_start()
    loss, norm, applied = t.train_step(t.iterator)
    np.savez(sys.argv[3], replicas=strategy.num_replicas_in_sync, loss=loss.numpy(),
             *[w for w in t.model.get_weights()])
""")


def test_mirrored_step_over_two_devices_equals_single_device_step(tmp_path):
    outputs = {}
    for logical in (1, 2):
        out = tmp_path / f"step_{logical}.npz"
        result = subprocess.run([sys.executable, "-c", ONE_STEP, str(logical),
                                 str(tmp_path / f"run_{logical}"), str(out)], cwd=ROOT,
                                env=ENV, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        outputs[logical] = np.load(out)
    assert int(outputs[1]["replicas"]) == 1 and int(outputs[2]["replicas"]) == 2
    np.testing.assert_allclose(outputs[1]["loss"], outputs[2]["loss"], rtol=1e-5)
    weights = [k for k in outputs[1].files if k.startswith("arr_")]
    assert weights
    for key in weights:
        np.testing.assert_allclose(outputs[1][key], outputs[2][key], rtol=1e-4, atol=1e-6,
                                   err_msg=key)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(data_flags, model_dir, *flags_per_worker):
    """Two train.py processes of one MultiWorkerMirroredStrategy cluster on
    this machine; worker i gets flags_per_worker[i] too."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index, extra in enumerate(flags_per_worker):
        env = {**ENV, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "train.py", *data_flags, "--strategy=multiworker",
             "--eval_every=1000", f"--model_dir={model_dir}", *extra], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return processes


def finish(processes, timeout=240):
    """Each worker's (returncode, stdout, stderr); kills any still running."""
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [(process.returncode, *output) for process, output in zip(processes, outputs)]


def test_two_local_workers_train_and_the_chief_checkpoints(data_flags, tmp_path):
    train([*data_flags, "--prepare_only"])  # the cache, built once before both start
    model_dir = tmp_path / "multi"
    flags = ["--train_steps=3", "--ckpt_every=1", f"--export={tmp_path / 'exported'}",
             "--export_average=2"]
    for returncode, stdout, stderr in finish(start_workers(data_flags, model_dir,
                                                           flags, flags)):
        assert returncode == 0, stderr[-3000:]
        assert "replicas: 2" in stdout
    checkpoints = os.listdir(model_dir / "checkpoints")
    assert "ckpt-3.index" in checkpoints
    assert not any(name.startswith(".worker_") for name in os.listdir(model_dir))
    # The chief alone averages the last two checkpoints and evaluates the average.
    metadata = json.load(open(tmp_path / "exported" / "metadata.json"))
    assert metadata["averaged_checkpoints"] == [2, 3]
    assert np.isfinite(metadata["eval_losses"]["eval_loss_ema"])


def stopped_at(stdout):
    return int(re.search(r"stopped at step (\d+)", stdout).group(1))


def test_a_signal_to_one_worker_stops_every_worker_with_a_checkpoint(data_flags, tmp_path):
    """A worker that stopped alone would leave the other waiting in the next
    all-reduce: the workers agree after each step on stopping, for a signal as
    for the time limit (the same agreement)."""
    train([*data_flags, "--prepare_only"])
    model_dir = tmp_path / "signalled"
    long_run = ["--train_steps=100000", "--ckpt_every=1000"]
    processes = start_workers(data_flags, model_dir, long_run, long_run)
    deadline = time.time() + 180
    while not (model_dir / "train").exists() and time.time() < deadline:
        time.sleep(0.5)  # the chief's summaries: the loop has started
    time.sleep(5)
    processes[1].send_signal(signal.SIGINT)  # worker 1, not the chief
    results = finish(processes)
    steps = set()
    for returncode, stdout, stderr in results:
        assert returncode == 130, stderr[-3000:]
        steps.add(stopped_at(stdout))
    [step] = steps
    assert f"ckpt-{step}.index" in os.listdir(model_dir / "checkpoints")
