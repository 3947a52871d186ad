"""Peer benchmark: ctapipe 0.32 on the same sim_telarray files as caliper-cherenkov's bench.

Not part of the project (the project never needs Python). Run it from a throwaway venv with
ctapipe 0.32 and eventio (here /work/venv-cherenkov, Python 3.12):

    python ctapipe_bench.py <file> <EFFECTIVE|EQUIVALENT> [n_processes]

Measures, with the events held in memory (file opening and reading excluded):
  * decompression alone (gzip / zstandard module, MB/s of decompressed output);
  * CameraCalibrator + ImageProcessor (calibrate + clean + parameterise), images/s;
  * the same + ShowerProcessor (stereo), images/s.
Each figure is the best of 3 runs of >= 1 s, after one warm-up pass (numba compilation).
ctapipe runs on one core; with n_processes = 2 two independent processes run the same loop at
the same time and their throughputs are added (the 2-core figure).
"""

import gzip
import multiprocessing as mp
import sys
import time
import warnings

warnings.simplefilter("ignore")


def decompress_rate(path):
    t = time.perf_counter()
    n = 0
    if path.endswith(".zst"):
        import zstandard

        with open(path, "rb") as fh:
            reader = zstandard.ZstdDecompressor().stream_reader(fh)
            while chunk := reader.read(1 << 20):
                n += len(chunk)
    elif path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                n += len(chunk)
    else:
        return None
    return n / (time.perf_counter() - t) / 1e6


def run(path, flc, queue=None):
    from ctapipe.calib import CameraCalibrator
    from ctapipe.image import ImageProcessor
    from ctapipe.io import EventSource
    from ctapipe.reco import ShowerProcessor
    from traitlets.config import Config

    cfg = Config({"SimTelEventSource": {"focal_length_choice": flc}})
    src = EventSource(path, config=cfg)
    events = list(src)
    calib = CameraCalibrator(subarray=src.subarray)
    proc = ImageProcessor(subarray=src.subarray)
    shower = ShowerProcessor(subarray=src.subarray)
    for e in events:  # warm-up: numba compilation
        calib(e)
        proc(e)
        shower(e)
    n_img = sum(len(e.r1.tel) for e in events)
    out = {}
    for stereo in (False, True):
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            images = 0
            while time.perf_counter() - t < 1.0:
                for e in events:
                    calib(e)
                    proc(e)
                    if stereo:
                        shower(e)
                images += n_img
            best = max(best, images / (time.perf_counter() - t))
        out[stereo] = best
    if queue is not None:
        queue.put(out)
    return out


def main():
    path, flc = sys.argv[1], sys.argv[2]
    nproc = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    name = path.split("/")[-1][:40]
    rate = decompress_rate(path)
    if rate is not None:
        print(f"{name}: decompression alone {rate:.0f} MB/s")
    if nproc == 1:
        res = [run(path, flc)]
    else:
        q = mp.Queue()
        ps = [mp.Process(target=run, args=(path, flc, q)) for _ in range(nproc)]
        for p in ps:
            p.start()
        res = [q.get() for _ in ps]
        for p in ps:
            p.join()
    for stereo in (False, True):
        total = sum(r[stereo] for r in res)
        label = "calibrate+clean+parameterise" + ("+stereo" if stereo else "")
        print(f"{name}: {label} {total:.0f} images/s ({nproc} process{'es' if nproc > 1 else ''})")


if __name__ == "__main__":
    main()
