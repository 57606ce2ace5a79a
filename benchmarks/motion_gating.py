"""Motion gating: the inference it saves on a still stretch and on the person video, and the person frames it keeps.

    python -m benchmarks.motion_gating [--still 300] [--frames 1394] [--rounds 1] [--crop]

The footage is an image folder: ``--still`` copies of one empty frame of ``one-by-one-person-detection.mp4`` (a
camera looking at a room where nothing happens), then the video's first ``--frames`` frames. It is replayed
through YOLOX-nano as ``edge replay`` does, without and with ``--motion``, in turn ``--rounds`` times (ratios are
medians of the per-round ratios). Per run: the frames the detector ran on, in the still stretch and in the video;
the inference seconds (the bundle's preprocess + infer + postprocess, summed over the frames it ran on) and the
wall time. Recall: of the frames where the ungated run finds a person, the share where the gated run reports one
(inferred there, or carried by the tracker).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks._setup import BUNDLE, VIDEO
from edge.config import RunConfig
from edge.replay import replay


def footage(folder: Path, still: int, frames: int) -> int:
    """Writes the still stretch and the video's frames as JPEGs (the still ones are copies of one file, so they
    decode to identical frames); returns how many video frames there are."""
    capture = cv2.VideoCapture(VIDEO)
    written = 0
    while written < frames:
        ok, image = capture.read()
        if not ok:
            break
        if written == 0:
            cv2.imwrite(str(folder / "still.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            for i in range(still):
                shutil.copyfile(folder / "still.jpg", folder / f"{i:05d}.jpg")
            (folder / "still.jpg").unlink()
        cv2.imwrite(str(folder / f"{still + written:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        written += 1
    return written


MODES = {"ungated": {}, "gated": {"motion": True}, "gated+crop": {"motion": True, "motion_crop": True}}


def run(source: Path, out: Path, mode: str) -> dict:
    started = time.perf_counter()
    summary = replay(str(source), RunConfig(bundles=[str(BUNDLE.root)], out=str(out), video=False, **MODES[mode]))
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    stats = summary["per_bundle"][BUNDLE.name]
    ran = [("inferred" not in e["results"][BUNDLE.name]) for e in events]
    persons = [any(d["label"] == "person" for d in e["results"][BUNDLE.name]["detections"]) for e in events]
    inferred = stats.get("inferred_frames", len(events))
    return {"wall_s": time.perf_counter() - started, "infer_s": inferred / stats["fps"], "ran": ran,
            "persons": persons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--still", type=int, default=300)
    parser.add_argument("--frames", type=int, default=1394)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--crop", action="store_true", help="also gated with --motion-crop")
    args = parser.parse_args()
    modes = [m for m in MODES if args.crop or m != "gated+crop"]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "footage"
        source.mkdir()
        video = footage(source, args.still, args.frames)
        rounds = [{mode: run(source, Path(tmp) / f"out-{n}-{mode}", mode) for mode in modes}
                  for n in range(args.rounds)]
    still = slice(0, args.still)
    for n, results in enumerate(rounds):
        every = results["ungated"]
        with_people = [i for i, p in enumerate(every["persons"]) if p]
        print(f"round {n}: ungated {every['infer_s']:.1f} s inference, {every['wall_s']:.1f} s wall; "
              f"frames with people: {len(with_people)}")
        for mode in modes[1:]:
            gated = results[mode]
            recall = sum(gated["persons"][i] for i in with_people) / max(len(with_people), 1)
            print(f"  {mode}: {gated['infer_s']:.1f} s inference, {gated['wall_s']:.1f} s wall; detector ran on "
                  f"{sum(gated['ran'][still])}/{args.still} still frames, {sum(gated['ran'][args.still:])}/{video} "
                  f"video frames, not on {sum(not gated['ran'][i] for i in with_people)} frames with people; "
                  f"recall {recall:.4f}")
    for mode in modes[1:]:
        infer = statistics.median(r[mode]["infer_s"] / r["ungated"]["infer_s"] for r in rounds)
        wall = statistics.median(r[mode]["wall_s"] / r["ungated"]["wall_s"] for r in rounds)
        print(f"{mode} / ungated (median of {len(rounds)}): inference time {infer:.3f} (saved {1 - infer:.1%}), "
              f"wall time {wall:.3f}")


if __name__ == "__main__":
    main()
