"""Train the detector for the synthetic world: `python -m sitl.synthetic.train`.

Draws a labelled dataset with the synthetic camera over the shared sites, trains a small
YOLO11 from its yaml (no downloaded weights: the synthetic world is simple enough to learn
from scratch on a CPU), measures mAP50 on held-out frames drawn with a different seed, and
exports ONNX for `vision.detectors` into vision/models/ with a JSON card beside it saying
how it was made and how well it does.

The network is YOLO11 at a width below ultralytics' "n" scale: the world has three classes
of plain shapes, and a 2-core CPU has to train it in well under an hour and run it beside
the rest of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "vision" / "models"
MODEL_NAME = "borderwatch-synthetic"
# depth, width, max channels — ultralytics' "n" is (0.50, 0.25, 1024).
SCALE = (0.33, 0.125, 512)


def _ultralytics_env(workdir: Path) -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics-config"))


def build_model(classes: int, workdir: Path, scale: tuple[float, float, int] = SCALE):
    """A fresh YOLO11 detector with `classes` outputs, from ultralytics' own yaml (no weights).

    The architecture is written to a yaml in the workdir because ultralytics' trainer
    rebuilds a yaml-born model from its file, not from the object it is given.
    """
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load("yolo11n.yaml")
    cfg.pop("yaml_file", None)
    cfg["scales"] = {"b": list(scale)}
    cfg["scale"] = "b"
    cfg["nc"] = classes
    path = workdir / "borderwatch-yolo11.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return YOLO(str(path), task="detect")


def _draw(data: Path, held_out_root: Path, sites, args) -> dict:
    """Training frames and held-out frames (other seeds: other worlds, other views) into one YOLO dataset."""
    from sitl.synthetic.dataset import make_dataset

    for root in (data, held_out_root):
        if root.exists():
            shutil.rmtree(root)
    summary = make_dataset(data, sites, args.train_images, 0, seed=args.seed)
    held_out = make_dataset(held_out_root, sites, 0, args.val_images, seed=args.seed + 1000)
    shutil.rmtree(data / "images" / "val")
    shutil.rmtree(data / "labels" / "val")
    shutil.copytree(held_out.root / "images" / "val", data / "images" / "val")
    shutil.copytree(held_out.root / "labels" / "val", data / "labels" / "val")
    labels = {"train": summary.labels["train"], "val": held_out.labels["val"]}
    (data / "summary.json").write_text(json.dumps({"labels": labels}, indent=2))
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sitl.synthetic.train", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("out/train"), help="dataset and training runs")
    parser.add_argument("--train-images", type=int, default=600)
    parser.add_argument("--val-images", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sites", type=Path, nargs="*", help="site files (default: the bundled sites)")
    parser.add_argument("--init", type=Path, metavar="WEIGHTS",
                        help="start from these weights (layers of matching shape), not from scratch")  # fmt: skip
    parser.add_argument("--reuse-dataset", action="store_true", help="train on the dataset already in the workdir")
    parser.add_argument("--output", type=Path, default=MODELS_DIR / f"{MODEL_NAME}.onnx")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _ultralytics_env(workdir)

    from missions.formats import BUNDLED_SITES, load_site
    from sitl.synthetic.dataset import CLASSES

    site_files = args.sites or sorted(BUNDLED_SITES.glob("*.geojson"))
    if not site_files:
        print(f"train: no site files (looked in {BUNDLED_SITES})", file=sys.stderr)
        return 2
    sites = [load_site(p) for p in site_files]
    started = time.time()
    data = workdir / "dataset"
    if args.reuse_dataset:
        labels = json.loads((data / "summary.json").read_text())["labels"]
    else:
        labels = _draw(data, workdir / "held-out", sites, args)
    print(f"train: dataset ready in {time.time() - started:.0f} s: {labels}")

    model = build_model(len(CLASSES), workdir)
    if args.init is not None:
        model.load(str(args.init))
    model.train(
        data=str(data / "data.yaml"), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=0,
        device="cpu", project=str(workdir / "runs"), name="synthetic", exist_ok=True, plots=False, amp=False,
        pretrained=str(args.init) if args.init else False, seed=args.seed, deterministic=False,
        patience=max(10, args.epochs // 3), val=True,
        mosaic=1.0, close_mosaic=max(1, args.epochs // 6), scale=0.5, degrees=0.0, fliplr=0.5, flipud=0.5,
        verbose=False,
    )  # fmt: skip
    best = workdir / "runs" / "synthetic" / "weights" / "best.pt"
    from ultralytics import YOLO

    trained = YOLO(str(best))
    metrics = trained.val(data=str(data / "data.yaml"), imgsz=args.imgsz, batch=args.batch, device="cpu",
                          plots=False, verbose=False, workers=0)  # fmt: skip
    per_class = {
        CLASSES[int(c)].value: round(float(ap), 4)
        for c, ap in zip(metrics.box.ap_class_index, metrics.box.ap50, strict=True)
    }
    # Exported for 16:9 frames: a 1280×720 image letterboxes into 416×234, so a 416×256 input
    # wastes 9 % where a square one wastes 44 %.
    export_hw = (math.ceil(args.imgsz * 9 / 16 / 32) * 32, args.imgsz)
    exported = Path(trained.export(format="onnx", imgsz=export_hw, simplify=False, dynamic=False, opset=17))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, args.output)
    shutil.copyfile(best, args.output.with_suffix(".pt"))
    card = {
        "model": args.output.name,
        "architecture": f"YOLO11 from ultralytics' yaml, depth/width/max-channels {list(SCALE)}, no pretrained weights",
        "classes": [c.value for c in CLASSES],
        "imgsz": args.imgsz,
        "onnx_input_hw": list(export_hw),
        "epochs": args.epochs,
        "train_images": args.train_images,
        "held_out_images": args.val_images,
        "train_labels": labels["train"],
        "held_out_labels": labels["val"],
        "initialised_from": None if args.init is None else args.init.name,
        "map50_held_out": round(float(metrics.box.map50), 4),
        "map50_95_held_out": round(float(metrics.box.map), 4),
        "ap50_per_class": per_class,
        "sites": [p.name for p in site_files],
        "onnx_bytes": args.output.stat().st_size,
        "minutes": round((time.time() - started) / 60, 1),
        "command": "python -m sitl.synthetic.train " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.output.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
