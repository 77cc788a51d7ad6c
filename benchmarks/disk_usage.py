"""Disk used by the decode, flow and feature caches, per hour of video.

    python benchmarks/disk_usage.py RUN_FOLDER [--dataset demo] [--extractor i3d]
    python benchmarks/disk_usage.py --synthetic 340x256 [--seconds 2]

RUN_FOLDER is the working directory of a finished run (the one holding work/<dataset>/). Video
durations come from work/<dataset>/index.json; only videos with a cache file count. Flow caches
are JPEG (or PNG) pairs per frame pair, so their size grows with the frame area (short_side)
and the amount of motion; the features are (T, 2048) float32, T = duration * fps / stride, so
their size per hour is fixed by the snippet grid: 3600 * 25 / 16 * 2048 * 4 B = 46.1 MB at
25 fps and a stride of 16, whatever the video.

``--synthetic WxH`` instead encodes a textured pan of that size (25 fps), computes its flow with
OpenCV's default TV-L1 parameters at that size and reports the flow cache per hour: the size
at real feature resolutions without a real dataset (slow: about 0.5 frame pairs per second).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def folder_usage(files: list[Path], durations: dict[str, float]) -> tuple[int, float, int]:
    """(bytes, seconds of video, number of videos) of the cache files of known videos."""
    sizes: dict[str, int] = {}
    for path in files:
        name = path.name.split(".")[0]
        if name in durations:
            sizes[name] = sizes.get(name, 0) + path.stat().st_size
    return sum(sizes.values()), sum(durations[n] for n in sizes), len(sizes)


def synthetic_flow(width: int, height: int, seconds: float) -> None:
    """Flow cache size per hour of a synthetic textured pan of ``width`` x ``height``."""
    import tempfile
    import time
    from fractions import Fraction

    import av
    import cv2
    import numpy as np

    from extractors.decode import decode
    from extractors.flowstage import flow_stage

    n = max(2, round(seconds * 25))
    rng = np.random.default_rng(0)
    texture = (rng.random((height // 4, (width + 2 * n) // 4, 3)) * 255).astype(np.uint8)
    texture = cv2.resize(texture, (width + 2 * n, height), interpolation=cv2.INTER_CUBIC)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "pan.mp4"
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=Fraction(25))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i in range(n):
                frame = np.ascontiguousarray(texture[:, 2 * i : 2 * i + width])
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        plan = decode(video, Path(tmp) / "plan.json", fps=25)
        start = time.time()
        flow_stage(Path(tmp) / "plan.json", Path(tmp) / "flow.zip", short_side=None, threads=1)
        size = (Path(tmp) / "flow.zip").stat().st_size
        hours = (plan.n_frames - 1) / 25 / 3600
        print(f"flow {width}x{height}, OpenCV default TV-L1, jpg: {size / 1e6:.2f} MB for "
              f"{hours * 3600:.2f} s of video -> {size / 1e6 / hours:.0f} MB per hour "
              f"({time.time() - start:.0f} s to compute)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, nargs="?", help="working directory of a finished run")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--extractor", default="i3d")
    parser.add_argument("--synthetic", metavar="WxH", help="measure flow of a synthetic pan")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the pan")
    args = parser.parse_args()
    if args.synthetic:
        width, height = (int(v) for v in args.synthetic.lower().split("x"))
        synthetic_flow(width, height, args.seconds)
        return
    if args.run is None:
        parser.error("give a run folder or --synthetic WxH")
    work = args.run / "work" / args.dataset
    index = json.loads((work / "index.json").read_text())
    durations = {v: float(r["duration"]) for v, r in index["videos"].items()}
    caches = {
        "decode (frame plans)": sorted((work / "decode").glob("*.json")),
        "flow (TV-L1 zip)": sorted((work / "flow").glob("*.zip")),
        f"features ({args.extractor} .npy + .json)": sorted(
            (work / "features" / args.extractor).glob("*")
        ),
    }
    print(f"{'cache':32} {'videos':>6} {'hours':>8} {'MB':>10} {'MB per hour':>12}")
    for name, files in caches.items():
        size, seconds, n = folder_usage(files, durations)
        if not n:
            continue
        hours = seconds / 3600
        print(f"{name:32} {n:6d} {hours:8.4f} {size / 1e6:10.2f} {size / 1e6 / hours:12.1f}")
    flows = caches["flow (TV-L1 zip)"]
    if flows:
        import zipfile

        with zipfile.ZipFile(flows[0]) as archive:
            meta = json.loads(archive.read("meta.json"))
        print(f"flow frames: {meta['width']}x{meta['height']}, codec {meta['codec']}, "
              f"{meta.get('fps')} fps")


if __name__ == "__main__":
    main()
