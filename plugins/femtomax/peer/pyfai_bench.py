"""Peer benchmark: pyFAI integrate1d on the shared Pilatus 1M CeO2 image, frames/s after the
one-time set-up, for both splitting modes (BENCHMARKS.md). Not part of the project (which never
needs Python); run it from a throwaway venv with pyFAI and fabio:

    OMP_NUM_THREADS=2 python pyfai_bench.py ../shared/data/xray/pyfai_ref
"""

import os
import sys
import time
from pathlib import Path

import fabio
import pyFAI

ref = Path(sys.argv[1])
img = fabio.open(str(ref / "pilatus1m_ceo2.cbf")).data
ai = pyFAI.load(str(ref / "pilatus1m_ceo2.poni"))
print(
    "pyFAI", pyFAI.version, "threads(OMP)", os.environ.get("OMP_NUM_THREADS", "default"),
    "cores", os.cpu_count(),
)
for method in [("no", "histogram", "cython"), ("bbox", "csr", "cython")]:
    t = time.perf_counter()
    ai.integrate1d(img, 1000, unit="q_nm^-1", method=method, correctSolidAngle=True)
    print(f"{'/'.join(method)} set-up: {time.perf_counter() - t:.3f} s")
    n = 0
    t = time.perf_counter()
    while time.perf_counter() - t < 5.0:
        ai.integrate1d(img, 1000, unit="q_nm^-1", method=method, correctSolidAngle=True)
        n += 1
    dt = time.perf_counter() - t
    print(f"{'/'.join(method)}: {n / dt:.1f} frames/s ({1e3 * dt / n:.2f} ms/frame)")
