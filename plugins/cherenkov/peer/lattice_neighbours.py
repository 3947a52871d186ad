"""Do ctapipe's pixel neighbours lie on a regular lattice? (plugins/cherenkov/BENCHMARKS.md, session 8)

For each camera in a sim_telarray file: the pixel positions (rotated by the camera's
pix_rotation) are put on a hexagonal lattice (axial coordinates, six neighbour offsets) and on a
square one (four offsets), and ctapipe's `CameraGeometry.neighbors` of every pixel is compared
with the pixels present at the lattice's offsets. "mismatched" counts the pixels whose
neighbour sets differ. Run in a throwaway venv with ctapipe 0.32:

    python lattice_neighbours.py <file.simtel[.gz|.zst]> EQUIVALENT|EFFECTIVE
"""

import sys

import numpy as np
from ctapipe.io import SimTelEventSource

HEX = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)]
SQUARE = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def mismatches(q, r, neighbors, offsets):
    at = {(a, b): i for i, (a, b) in enumerate(zip(q, r))}
    if len(at) != len(q):
        return None  # two pixels on one lattice site: not this lattice
    bad = 0
    for i, nb in enumerate(neighbors):
        lattice = {at[(q[i] + dq, r[i] + dr)] for dq, dr in offsets if (q[i] + dq, r[i] + dr) in at}
        bad += lattice != set(nb)
    return bad


def main():
    path, focal = sys.argv[1], sys.argv[2]
    src = SimTelEventSource(path, max_events=1, focal_length_choice=focal)
    seen = set()
    for tel in src.subarray.tel.values():
        g = tel.camera.geometry
        if g.name in seen:
            continue
        seen.add(g.name)
        rot = g.pix_rotation.to_value("rad")
        x, y = g.pix_x.to_value("m"), g.pix_y.to_value("m")
        xr = np.cos(rot) * x + np.sin(rot) * y
        yr = -np.sin(rot) * x + np.cos(rot) * y
        i0 = 0
        d = np.min(np.hypot(xr[g.neighbors[i0]] - xr[i0], yr[g.neighbors[i0]] - yr[i0]))
        # hexagonal: rows d*sqrt(3)/2 apart, every other row shifted by d/2
        r = np.round((yr - yr.min()) / (d * np.sqrt(3) / 2)).astype(int)
        q = np.round((xr - xr.min()) / d - r / 2).astype(int)
        hexagonal = mismatches(q, r, g.neighbors, HEX)
        qs = np.round((xr - xr.min()) / d).astype(int)
        rs = np.round((yr - yr.min()) / d).astype(int)
        square = mismatches(qs, rs, g.neighbors, SQUARE)
        print(
            f"{g.name}: {g.n_pixels} pixels; mismatched on a hexagonal lattice: {hexagonal}, "
            f"on a square lattice: {square} (None: pixels share a site)"
        )


if __name__ == "__main__":
    main()
