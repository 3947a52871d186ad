"""numpy peer for the CSPad averaging benchmark (plugins/cspad/BENCHMARKS.md).

The same steps as caliper-cspad's averaging pass and cctbx's cxi.mpi_average: per-pixel mean,
population standard deviation, maximum and minimum over a run's frames, float64 accumulation
(sum and sum of squares, std = sqrt(sumsq/N - mean^2) as cxi.mpi_average).

Frames: the raw int16 file the Rust benchmark writes (CSPAD_RAW=<file> with
`cargo run --release -p caliper-cspad --example average_bench`), so both see the same bytes:
N x 32 x 185 x 388 little-endian int16. Optionally also reads HDF5 copies (uncompressed and
deflate) written here with h5py.

Forms timed (best of 3 passes each, frames in memory, one thread):
  frame:  frame by frame, in-place ufuncs (np.add(s, f, out=s), ...), as cxi.mpi_average loops
  block:  blocks of B frames: b.astype(float64), sum over axis 0, (b*b).sum(axis 0),
          b.max/min(axis 0) on the int16 block; the fastest fair numpy form found

usage: python numpy_peer.py <raw file> <frames> [block=32] [h5 dir]
"""

import os
import sys
import time

import numpy as np

SHAPE = (32, 185, 388)


def average_frames(frames):
    s = np.zeros(SHAPE, np.float64)
    ss = np.zeros(SHAPE, np.float64)
    mx = np.full(SHAPE, np.iinfo(np.int16).min, np.int16)
    mn = np.full(SHAPE, np.iinfo(np.int16).max, np.int16)
    f = np.empty(SHAPE, np.float64)
    n = 0
    for fr in frames:
        np.copyto(f, fr)  # int16 -> float64
        np.add(s, f, out=s)
        np.multiply(f, f, out=f)
        np.add(ss, f, out=ss)
        np.maximum(mx, fr, out=mx)
        np.minimum(mn, fr, out=mn)
        n += 1
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
    return mean, std, mx, mn


def average_blocks(blocks):
    s = np.zeros(SHAPE, np.float64)
    ss = np.zeros(SHAPE, np.float64)
    mx = np.full(SHAPE, np.iinfo(np.int16).min, np.int16)
    mn = np.full(SHAPE, np.iinfo(np.int16).max, np.int16)
    n = 0
    for b in blocks:
        bf = b.astype(np.float64)
        s += bf.sum(axis=0)
        np.multiply(bf, bf, out=bf)
        ss += bf.sum(axis=0)
        np.maximum(mx, b.max(axis=0), out=mx)
        np.minimum(mn, b.min(axis=0), out=mn)
        n += b.shape[0]
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
    return mean, std, mx, mn


def best_of(f, reps=3):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def report(name, n, secs):
    gb = n * np.prod(SHAPE) * 2 / secs / 1e9
    print(f"numpy {name:<58} {n / secs:8.1f} frames/s {gb:6.2f} GB/s", flush=True)


def main():
    raw, n = sys.argv[1], int(sys.argv[2])
    block = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    h5dir = sys.argv[4] if len(sys.argv) > 4 else None
    stack = np.fromfile(raw, dtype="<i2", count=n * int(np.prod(SHAPE))).reshape((n,) + SHAPE)
    print(f"numpy {np.__version__}, {n} frames, load {os.getloadavg()}", flush=True)
    secs, (m1, s1, x1, y1) = best_of(lambda: average_frames(stack))
    report("frame by frame (in memory)", n, secs)
    secs, (m2, s2, x2, y2) = best_of(
        lambda: average_blocks(stack[k : k + block] for k in range(0, n, block))
    )
    report(f"blocks of {block} frames (in memory)", n, secs)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    # The two forms agree (same sums, different order): sanity check.
    assert np.allclose(m1, m2, rtol=1e-12) and np.allclose(s1, s2, rtol=1e-6, atol=1e-6)
    if h5dir:
        import h5py

        for name, kw in [("uncompressed", {}), ("deflate", {"compression": "gzip"})]:
            path = os.path.join(h5dir, f"cspad-{name}.h5")
            if not os.path.exists(path):
                with h5py.File(path, "w") as f:
                    f.create_dataset(
                        "/data/cspad", data=stack, chunks=(1,) + SHAPE, **kw
                    )

            def run():
                with h5py.File(path, "r") as f:
                    d = f["/data/cspad"]
                    return average_blocks(d[k : k + block] for k in range(0, n, block))

            secs, _ = best_of(run, reps=2 if name == "deflate" else 3)
            report(f"h5py {name} HDF5 (chunk = 1 frame), blocks of {block}", n, secs)


if __name__ == "__main__":
    main()
