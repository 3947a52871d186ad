"""Regenerate the extra pyFAI references under plugins/femtomax/tests/pyfai/.

The shared reference (../shared/data/xray/pyfai_ref) carries integrate1d results in q (nm^-1)
only. This script runs pyFAI on the same shared image and PONI for the cases the shared set lists
but does not carry (2theta in degrees, q in A^-1, polarisation, no solid-angle correction) and
writes them with full float64 precision, plus pyFAI's per-pixel polarisation factor at sample
pixels. The project never needs Python: run this only to regenerate the files.

    python plugins/femtomax/peer/make_pyfai_refs.py ../shared/data/xray/pyfai_ref \
        plugins/femtomax/tests/pyfai
"""

import json
import sys
from pathlib import Path

import numpy as np
import pyFAI
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

ref = Path(sys.argv[1])
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)

img = np.load(ref / "pilatus1m_ceo2.npy")
user_mask = np.load(ref / "mask_user.npy")
ai = pyFAI.load(str(ref / "pilatus1m_ceo2.poni"))
assert isinstance(ai, AzimuthalIntegrator)

CASES = [
    # name, method, unit, mask, correctSolidAngle, polarization_factor
    ("detmask_no_2th", ("no", "histogram", "cython"), "2th_deg", None, True, None),
    ("detmask_bbox_2th", ("bbox", "csr", "cython"), "2th_deg", None, True, None),
    ("detmask_no_qA", ("no", "histogram", "cython"), "q_A^-1", None, True, None),
    ("detmask_bbox_qA", ("bbox", "csr", "cython"), "q_A^-1", None, True, None),
    ("detmask_no_q_pol099", ("no", "histogram", "cython"), "q_nm^-1", None, True, 0.99),
    ("detmask_bbox_q_polm05", ("bbox", "csr", "cython"), "q_nm^-1", None, True, -0.5),
    ("usermask_no_q_nosa", ("no", "histogram", "cython"), "q_nm^-1", user_mask, False, None),
    ("usermask_bbox_q_nosa", ("bbox", "csr", "cython"), "q_nm^-1", user_mask, False, None),
]

index = {"pyFAI": pyFAI.version, "numpy": np.__version__, "npt": 1000, "cases": []}
for name, method, unit, mask, sa, pol in CASES:
    r = ai.integrate1d(
        img,
        1000,
        unit=unit,
        method=method,
        mask=mask,
        correctSolidAngle=sa,
        polarization_factor=pol,
    )
    # Bin centres are float64 in pyFAI; intensities and counts are float32 (9 digits round-trip).
    with open(out / f"{name}.csv", "w") as f:
        f.write("radial,intensity,count\n")
        for x, i, c in zip(r.radial, r.intensity, r.count):
            f.write(f"{x:.17g},{float(i):.9g},{float(c):.9g}\n")
    index["cases"].append(
        {
            "name": name,
            "method": list(method),
            "unit": unit,
            "mask": "user" if mask is not None else "detector",
            "correctSolidAngle": sa,
            "polarization_factor": pol,
        }
    )

# Per-pixel polarisation factors (pyFAI's float32 array) at sample pixels.
samples = [(0, 0), (0, 980), (1042, 0), (1042, 980), (521, 490), (100, 200), (800, 900),
           (418, 383), (300, 700), (1000, 50)]
pixels = []
for factor in (0.99, 0.5, -0.3):
    p32 = ai.polarization(factor=factor)
    for (r, c) in samples:
        pixels.append({"row": r, "col": c, "factor": factor, "polarization": float(p32[r, c])})
index["polarization_samples"] = pixels
(out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
print("wrote", len(CASES), "cases to", out)
