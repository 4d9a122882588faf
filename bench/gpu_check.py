"""GPU check for the Keras families: visible devices, memory growth, and one LSTM epoch timed on the GPU and on the CPU.

Run it whenever a machine with a GPU is at hand (it needs only the project's environment):

    python bench/gpu_check.py [--samples 20000] [--units 64] [--require-gpu]

It prints one JSON object: TensorFlow's version and whether it was built with CUDA, the GPUs it sees, memory growth as
stage 05 sets it (`configure_devices`), the device a test op and the LSTM's weights landed on, and the seconds of one
training epoch of stage 05's LSTM (`build_lstm`, the same shapes as the demo: 20 days x 12 inputs, 3 horizons) on each
device, after a warm-up epoch that builds the graph. With no GPU it says why and times the CPU alone; `--require-gpu`
then exits 1.

The backend is Keras's (`KERAS_BACKEND`, TensorFlow by default, as stage 05 runs). On a machine whose image has JAX but
no TensorFlow, `KERAS_BACKEND=jax` times the same Keras model there: memory growth is then XLA's
`XLA_PYTHON_CLIENT_PREALLOCATE=false`, set by this script.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--samples", type=int, default=20000, help="training samples in the timed epoch")
ap.add_argument("--window", type=int, default=20)
ap.add_argument("--inputs", type=int, default=12)
ap.add_argument("--units", type=int, default=64)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--require-gpu", action="store_true", help="exit 1 when no GPU is visible")
ap.add_argument("--cpu-only", action="store_true", help="time the CPU alone and print its figures (the JAX backend's CPU run)")
a = ap.parse_args()

BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if a.cpu_only and BACKEND == "jax": os.environ["JAX_PLATFORMS"] = "cpu"   # JAX lowers Keras's LSTM to cuDNN whenever a GPU exists
from volregime.core import import_quietly
from volregime.supervised import build_lstm

if BACKEND == "tensorflow":
    from volregime.supervised import configure_devices
    info = configure_devices("", True, 0)          # what stage 05 does: every GPU visible, memory growth on
    tf = import_quietly("tensorflow")
    gpus = tf.config.list_physical_devices("GPU")
    report = {"backend": BACKEND, "tensorflow": info["tensorflow"], "built_with_cuda": bool(tf.test.is_built_with_cuda()),
              "gpus": info["gpus"], "memory_growth": [bool(tf.config.experimental.get_memory_growth(g)) for g in gpus],
              "test_op_device": info["test_op_device"]}
    if not gpus:
        report["no_gpu_because"] = ("TensorFlow was built without CUDA" if not report["built_with_cuda"] else
                                    "TensorFlow sees no GPU (no device, no driver, or CUDA_VISIBLE_DEVICES hides it)")
elif BACKEND == "jax":
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")   # JAX's memory growth: allocate as needed
    import jax
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    x = jax.numpy.ones((256, 256))
    report = {"backend": BACKEND, "jax": jax.__version__, "gpus": [str(g) for g in gpus],
              "memory_growth": os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false", "test_op_device": str((x @ x).devices())}
    if not gpus: report["no_gpu_because"] = "JAX sees no GPU (a CPU-only jaxlib, no device, or no driver)"
else:
    raise SystemExit(f"KERAS_BACKEND={BACKEND!r}: this check knows tensorflow and jax")
keras = import_quietly("keras")
report.update(keras=keras.__version__, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))

rng = np.random.default_rng(0)
X = rng.normal(size=(a.samples, a.window, a.inputs)).astype("float32")
y = (X[:, -5:, :3].mean(axis=1) + 0.1 * rng.normal(size=(a.samples, 3))).astype("float32")


def where(v) -> str:
    "The device a Keras variable lives on, whatever the backend."
    val = getattr(v, "value", v)
    return str(val.devices()) if hasattr(val, "devices") else str(getattr(val, "device", "?"))


def one_epoch(device: str) -> dict:
    "Seconds of one epoch on `device` after a warm-up epoch, and where the weights live."
    with keras.device(device):
        m = build_lstm((a.window, a.inputs), 3, units=a.units, seed=0)
        m.fit(X[: 4 * a.batch_size], y[: 4 * a.batch_size], epochs=1, batch_size=a.batch_size, verbose=0)   # builds the graph
        t0 = time.perf_counter()
        h = m.fit(X, y, epochs=1, batch_size=a.batch_size, verbose=0)
        secs = time.perf_counter() - t0
    return {"epoch_s": round(secs, 3), "weights_on": where(m.trainable_weights[0]), "loss": float(h.history["loss"][-1])}


if a.cpu_only:
    print(json.dumps(one_epoch("cpu:0"))); raise SystemExit(0)
if BACKEND == "jax":   # a CPU-only JAX in a process of its own: with a GPU present its LSTM is cuDNN's, which the CPU cannot run
    import subprocess, sys
    r = subprocess.run([sys.executable, __file__, "--cpu-only", *sys.argv[1:]], capture_output=True, text=True)
    report["cpu"] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr.strip().splitlines()[-1:]}
else:
    report["cpu"] = one_epoch("cpu:0")
if gpus:
    report["gpu"] = one_epoch("gpu:0")
    report["gpu_speedup"] = round(report["cpu"]["epoch_s"] / report["gpu"]["epoch_s"], 2)
    if BACKEND == "tensorflow":
        report["gpu_memory_peak_mb"] = round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
    else:
        report["gpu_memory_peak_mb"] = round(gpus[0].memory_stats().get("peak_bytes_in_use", 0) / 2**20, 1)
print(json.dumps(report, indent=1))
if a.require_gpu and not gpus: raise SystemExit(1)
