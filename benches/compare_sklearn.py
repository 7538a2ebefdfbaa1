#!/usr/bin/env python3
"""Times LeNet-300-100 training in deepcompress against scikit-learn's MLPClassifier.

Both train a 784-300-100-10 ReLU network with Adam (lr 1e-3), batch 128, for exactly
40 epochs on the 8,000 embedded MNIST training images, on the same machine in one run of
this script. The median of the repeats is reported.

    pip install numpy scikit-learn
    python3 benches/compare_sklearn.py [repeats]      # from the repository root
"""
import gzip
import json
import pathlib
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "mnist"


def idx(name):
    raw = gzip.open(DATA / name).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def sklearn_run(x, y, xt, yt):
    clf = MLPClassifier(hidden_layer_sizes=(300, 100), solver="adam", learning_rate_init=1e-3,
                        batch_size=128, max_iter=40, tol=0.0, n_iter_no_change=1000,
                        random_state=0, shuffle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(x, y)
        secs = time.perf_counter() - start
    return secs, clf.score(xt, yt), clf.n_iter_


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    x = idx("train-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
    y = idx("train-labels-idx1-ubyte.gz")
    xt = idx("test-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0
    yt = idx("test-labels-idx1-ubyte.gz")

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "deepcompress-benches", "--bin", "time_training"],
                   cwd=ROOT, check=True)
    ours = []
    out = subprocess.run([str(ROOT / "target" / "release" / "time_training"), str(repeats)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        ours.append(json.loads(line))

    rows = []
    for dtype in (np.float64, np.float32):
        runs = [sklearn_run(x.astype(dtype), y, xt.astype(dtype), yt) for _ in range(repeats)]
        rows.append((f"scikit-learn MLPClassifier ({np.dtype(dtype).name})",
                     statistics.median(r[0] for r in runs), runs[0][1], runs[0][2]))
    ours_med = statistics.median(r["seconds"] for r in ours)
    rows.append(("deepcompress (f32)", ours_med, ours[0]["test_accuracy"], 40))

    print(f"LeNet-300-100, 40 epochs, batch 128, 8,000 images; median of {repeats} runs\n")
    print("| implementation | seconds | test accuracy | epochs |")
    print("|---|---:|---:|---:|")
    for name, secs, acc, ep in rows:
        print(f"| {name} | {secs:.2f} | {100 * acc:.2f} % | {ep} |")
    for name, secs, _, _ in rows[:-1]:
        print(f"\ndeepcompress time / {name} time = {ours_med / secs:.2f}")


if __name__ == "__main__":
    main()
