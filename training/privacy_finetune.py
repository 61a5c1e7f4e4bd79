"""Fine-tune the privacy model on road photos whose persons and vehicles were labelled by eye.

The privacy model (:mod:`training.privacy`) is COCO's YOLOv5n with its classic anchor-based head; the
training here is YOLOv5 v6.1's own (``utils/loss.py``): each labelled box is assigned to the anchors
whose shape is within 4x of it, at its grid cell and the two nearest neighbouring cells, on every level;
box loss ``1 - CIoU``, objectness BCE towards the IoU of the assigned prediction (levels weighted 4, 1,
0.4), class BCE. The labels know two classes, ``person`` and ``vehicle``, the model six: a person box
trains the person score up and the vehicle scores down; a vehicle box trains the person score down and
the largest of the five vehicle scores (bicycle, car, motorcycle, bus, truck) up, since for blurring any
vehicle class is as good as another.

Labels are the audit's format (``bench/privacy_audit.py``): a JSON object, file name -> list of
``{"class": "person" | "vehicle", "box": [x1, y1, x2, y2]}`` in pixels. Frames without persons or
vehicles (``negatives``) teach the model where not to fire. The backbone (layers 0..9) and every
BatchNorm stay frozen: a few hundred photos are too few to move COCO's features, and the blur must keep
working on roads the photos do not show.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from training.privacy import (
    PRIVACY_NAMES,
    ClassicHead,
    PrivacyYolo,
    build_privacy_model,
    export_onnx,
)
from training.seed import load_yolov5_state_dict

LABEL_CLASSES = ("person", "vehicle")
PERSON = 0  # the privacy model's person class; 1..5 are vehicles
LEVEL_BALANCE = (4.0, 1.0, 0.4)  # YOLOv5's objectness weights for P3, P4, P5
ANCHOR_T = 4.0  # a box is assigned to anchors whose width and height ratios are under 4
BOX_GAIN, OBJ_GAIN, CLS_GAIN = 0.05, 1.0, 0.5 * 6 / 80  # YOLOv5 hyp.scratch-low, cls scaled to 6 classes
FROZEN_LAYERS = 10  # backbone: ultralytics layers 0..9

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FinetuneOptions:
    """How to fine-tune; the defaults are what ``bench/privacy_finetune.py`` measured."""

    epochs: int = 20
    imgsz: int = 640
    batch: int = 8
    lr0: float = 0.002
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    scale: tuple[float, float] = (0.6, 1.2)  # random zoom of each photo
    flip: float = 0.5
    seed: int = 0
    frozen_layers: int = FROZEN_LAYERS


@dataclass(frozen=True)
class Sample:
    """One training photo and its boxes (class 0 person, 1 vehicle; pixels)."""

    path: Path
    boxes: tuple[tuple[int, float, float, float, float], ...]


def read_labels(files: Sequence[Path]) -> dict[str, list[tuple[int, tuple[float, float, float, float]]]]:
    """File name -> ``(class index, box)`` of one or more label files; refuses unknown classes, bad
    boxes and a frame labelled in two files."""
    out: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {}
    for file in files:
        raw = json.loads(file.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{file}: expected an object of file name -> list of boxes")
        for frame, objects in raw.items():
            if frame in out:
                raise ValueError(f"{file}: {frame} is labelled in another file too")
            if not isinstance(objects, list):
                raise ValueError(f"{file}: {frame}: expected a list of objects")
            boxes = []
            for obj in objects:
                cls, box = obj.get("class"), obj.get("box")
                if cls not in LABEL_CLASSES:
                    raise ValueError(f"{file}: {frame}: class {cls!r} is not one of {LABEL_CLASSES}")
                if not (isinstance(box, list) and len(box) == 4 and box[2] > box[0] and box[3] > box[1]):
                    raise ValueError(
                        f"{file}: {frame}: box {box!r} is not [x1, y1, x2, y2] with x2>x1, y2>y1"
                    )
                boxes.append(
                    (LABEL_CLASSES.index(cls), (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
                )
            out[frame] = boxes
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def find_photos(folders: Sequence[Path], wanted: set[str] | None = None) -> dict[str, Path]:
    """File name -> path of the photos under ``folders`` (recursively; the first found of a name), only
    the ``wanted`` names if given. Refuses a folder that does not exist."""
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"not a folder: {folder}")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and (wanted is None or path.name in wanted):
                found.setdefault(path.name, path)
    return found


def sample_negatives(photos: dict[str, Path], exclude: set[str], count: int, seed: int = 0) -> list[Path]:
    """``count`` of ``photos`` whose names are not in ``exclude`` (the labelled frames), in a seeded random
    order, from training folders only (a path with a ``train`` part) when there are any: in a data set
    screened by eye, where every frame showing a person or vehicle was labelled, the rest show nobody."""
    candidates = sorted(p for name, p in photos.items() if name not in exclude)
    trained = [p for p in candidates if "train" in p.parts]
    pool = trained or candidates
    random.Random(seed).shuffle(pool)
    return sorted(pool[:count])


def make_samples(
    labels: dict[str, list[tuple[int, tuple[float, float, float, float]]]],
    paths: dict[str, Path],
    negatives: Sequence[Path] = (),
) -> list[Sample]:
    """Training samples: each labelled frame found in ``paths``, then the negative photos (no boxes)."""
    missing = sorted(set(labels) - set(paths))
    if missing:
        raise ValueError(f"{len(missing)} labelled frames not found, e.g. {missing[:3]}")
    samples = [
        Sample(paths[frame], tuple((c, *box) for c, box in boxes)) for frame, boxes in sorted(labels.items())
    ]
    clash = {p.name for p in negatives} & set(labels)
    if clash:
        raise ValueError(f"{len(clash)} negative photos are labelled frames, e.g. {sorted(clash)[:3]}")
    return samples + [Sample(p, ()) for p in negatives]


def augment(
    image: Image, boxes: npt.NDArray[np.float32], imgsz: int, rng: random.Random, options: FinetuneOptions
) -> tuple[Image, npt.NDArray[np.float32]]:
    """A square ``imgsz`` training image: the photo zoomed by a random factor around the longer side
    fitting ``imgsz``, placed at a random offset on grey (cropped where larger), mirrored at random.
    ``boxes`` ``(n, 5)`` class, x1, y1, x2, y2 in pixels; returned clipped, tiny remnants dropped."""
    h, w = image.shape[:2]
    zoom = imgsz / max(h, w) * rng.uniform(*options.scale)
    nh, nw = max(1, round(h * zoom)), max(1, round(w * zoom))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dx = rng.randint(min(0, imgsz - nw), max(0, imgsz - nw))
    dy = rng.randint(min(0, imgsz - nh), max(0, imgsz - nh))
    canvas: Image = np.full((imgsz, imgsz, 3), 114, np.uint8)
    sx, sy = max(0, -dx), max(0, -dy)
    tx, ty = max(0, dx), max(0, dy)
    cw, ch = min(nw - sx, imgsz - tx), min(nh - sy, imgsz - ty)
    canvas[ty : ty + ch, tx : tx + cw] = resized[sy : sy + ch, sx : sx + cw]
    out = boxes.copy()
    if len(out):
        out[:, [1, 3]] = out[:, [1, 3]] * zoom + dx
        out[:, [2, 4]] = out[:, [2, 4]] * zoom + dy
        out[:, 1:] = out[:, 1:].clip(0, imgsz)
        keep = ((out[:, 3] - out[:, 1]) >= 2) & ((out[:, 4] - out[:, 2]) >= 2)
        out = out[keep]
    if rng.random() < options.flip:
        canvas = cast(Image, np.ascontiguousarray(canvas[:, ::-1]))
        if len(out):
            out[:, [1, 3]] = imgsz - out[:, [3, 1]]
    return canvas, out


def raw_levels(model: PrivacyYolo, images: torch.Tensor) -> list[torch.Tensor]:
    """The head's raw conv outputs per level, ``(B, na, ny, nx, 5 + nc)`` (YOLOv5's training layout)."""
    x: Any = images
    outputs: list[Any] = []
    for layer in list(model.model)[:-1]:
        source: Any = layer.f
        if source != -1:
            x = outputs[source] if isinstance(source, int) else [x if j == -1 else outputs[j] for j in source]
        x = layer(x)
        outputs.append(x)
    head = cast(ClassicHead, model.model[-1])
    from training.privacy import FEATURE_LAYERS

    levels = []
    for conv, i in zip(head.m, FEATURE_LAYERS, strict=True):
        raw = conv(outputs[i])
        b, _, ny, nx = raw.shape
        levels.append(raw.view(b, head.na, 5 + head.nc, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
    return levels


def bbox_ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of paired boxes ``(n, 4)`` cx, cy, w, h (YOLOv5's ``bbox_iou(..., CIoU=True)``)."""
    b1x1, b1x2 = box1[:, 0] - box1[:, 2] / 2, box1[:, 0] + box1[:, 2] / 2
    b1y1, b1y2 = box1[:, 1] - box1[:, 3] / 2, box1[:, 1] + box1[:, 3] / 2
    b2x1, b2x2 = box2[:, 0] - box2[:, 2] / 2, box2[:, 0] + box2[:, 2] / 2
    b2y1, b2y2 = box2[:, 1] - box2[:, 3] / 2, box2[:, 1] + box2[:, 3] / 2
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * (
        torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)
    ).clamp(0)
    w1, h1, w2, h2 = box1[:, 2], box1[:, 3] + eps, box2[:, 2], box2[:, 3] + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw**2 + ch**2 + eps
    rho2 = (box2[:, 0] - box1[:, 0]) ** 2 + (box2[:, 1] - box1[:, 1]) ** 2
    v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloV5Loss:
    """YOLOv5 v6.1's ``ComputeLoss`` for the classic head, with the two-label class term above."""

    def __init__(self, head: ClassicHead) -> None:
        strides = torch.tensor(head.strides).view(-1, 1, 1)
        self.anchors = cast(torch.Tensor, head.anchors_px) / strides  # grid units, (nl, na, 2)
        self.na = head.na
        self.bce = nn.BCEWithLogitsLoss()

    def targets(
        self, levels: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> list[tuple[torch.Tensor, ...]]:
        """Per level: image, anchor, grid y, grid x, label class, box (cx, cy offsets in the cell; w, h)
        in grid units, anchor (w, h) of every assigned prediction. ``targets`` ``(n, 6)``: image index,
        label class, cx, cy, w, h normalised to the image."""
        nt = targets.shape[0]
        ai = torch.arange(self.na, dtype=torch.float32).view(self.na, 1).repeat(1, nt)
        t_all = torch.cat((targets.repeat(self.na, 1, 1), ai[:, :, None]), 2)  # (na, nt, 7)
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * g
        out: list[tuple[torch.Tensor, ...]] = []
        for i, level in enumerate(levels):
            anchors = self.anchors[i]
            ny, nx = level.shape[2], level.shape[3]
            gain = torch.tensor([1, 1, nx, ny, nx, ny, 1], dtype=torch.float32)
            t = t_all * gain
            if nt:
                r = t[:, :, 4:6] / anchors[:, None]
                t = t[torch.max(r, 1 / r).max(2)[0] < ANCHOR_T]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                left, m = ((gxi % 1 < g) & (gxi > 1)).T
                mask = torch.stack((torch.ones_like(j), j, k, left, m))
                t = t.repeat((5, 1, 1))[mask]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[mask]
            else:
                t, offsets = t_all[0], torch.zeros((0, 2))
            b, c = t[:, 0].long(), t[:, 1].long()
            gxy, gwh = t[:, 2:4], t[:, 4:6]
            gij = (gxy - offsets).long()
            gi, gj = gij[:, 0].clamp(0, nx - 1), gij[:, 1].clamp(0, ny - 1)
            a = t[:, 6].long()
            out.append((b, a, gj, gi, c, torch.cat((gxy - gij, gwh), 1), anchors[a]))
        return out

    def __call__(
        self, levels: Sequence[torch.Tensor], targets: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        lbox, lobj, lcls = torch.zeros(()), torch.zeros(()), torch.zeros(())
        for i, (level, (b, a, gj, gi, c, tbox, anchor)) in enumerate(
            zip(levels, self.targets(levels, targets), strict=True)
        ):
            tobj = torch.zeros(level.shape[:4])
            if b.shape[0]:
                ps = level[b, a, gj, gi]
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * anchor
                iou = bbox_ciou(torch.cat((pxy, pwh), 1), tbox)
                lbox = lbox + (1.0 - iou).mean()
                tobj[b, a, gj, gi] = iou.detach().clamp(0).to(tobj.dtype)
                logits = ps[:, 5:]
                person = c == 0
                # person: person up, vehicles down; vehicle: person down, its best vehicle class up.
                person_target = person.to(logits.dtype)
                cls_terms = [self.bce(logits[:, PERSON], person_target)]
                if person.any():
                    cls_terms.append(
                        self.bce(
                            logits[person][:, PERSON + 1 :], torch.zeros_like(logits[person][:, PERSON + 1 :])
                        )
                    )
                if (~person).any():
                    best = logits[~person][:, PERSON + 1 :].max(1).values
                    cls_terms.append(self.bce(best, torch.ones_like(best)))
                lcls = lcls + sum(cls_terms)
            lobj = lobj + self.bce(level[..., 4], tobj) * LEVEL_BALANCE[i]
        batch = levels[0].shape[0]
        parts = {
            "box": float(lbox.detach()) * BOX_GAIN,
            "obj": float(lobj.detach()) * OBJ_GAIN,
            "cls": float(lcls.detach()) * CLS_GAIN,
        }
        total = (lbox * BOX_GAIN + lobj * OBJ_GAIN + lcls * CLS_GAIN) * batch
        return total, parts


def batches(
    samples: Sequence[Sample], options: FinetuneOptions, rng: random.Random
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled, augmented batches: images ``(B, 3, S, S)`` RGB 0..1, targets ``(n, 6)``."""
    from detector import read_image

    order = list(samples)
    rng.shuffle(order)
    out = []
    for start in range(0, len(order), options.batch):
        images, targets = [], []
        for index, sample in enumerate(order[start : start + options.batch]):
            raw: npt.NDArray[np.float32] = np.array(sample.boxes, np.float32).reshape(-1, 5)
            image, boxes = augment(read_image(sample.path), raw, options.imgsz, rng, options)
            images.append(torch.from_numpy(image).permute(2, 0, 1).float() / 255.0)
            for cls, x1, y1, x2, y2 in boxes:
                s = options.imgsz
                targets.append(
                    [index, cls, (x1 + x2) / 2 / s, (y1 + y2) / 2 / s, (x2 - x1) / s, (y2 - y1) / s]
                )
        out.append((torch.stack(images), torch.tensor(targets, dtype=torch.float32).reshape(-1, 6)))
    return out


def freeze(model: PrivacyYolo, frozen_layers: int) -> int:
    """Freeze layers ``0 .. frozen_layers - 1`` and every BatchNorm; returns the trainable tensor count."""
    for i, layer in enumerate(model.model):
        for p in layer.parameters():
            p.requires_grad = i >= frozen_layers
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for p in m.parameters():
                p.requires_grad = False
    return sum(p.requires_grad for p in model.parameters())


def set_train_mode(model: PrivacyYolo) -> None:
    """Train mode, with every BatchNorm kept in eval mode (COCO's running statistics stay)."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def finetune(
    checkpoint: Path,
    samples: Sequence[Sample],
    out: Path,
    options: FinetuneOptions = FinetuneOptions(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune the privacy model built from ``checkpoint`` on ``samples``; export it to ``out`` (ONNX,
    as ``python -m training privacy-model`` does) and check it with ``detector``. Returns a summary with
    the loss of every epoch."""
    from detector import Detector

    if not samples or not any(s.boxes for s in samples):
        raise ValueError("no labelled person or vehicle among the training photos")
    if options.epochs < 1 or options.batch < 1:
        raise ValueError("epochs and batch must be at least 1")
    torch.manual_seed(options.seed)
    rng = random.Random(options.seed)
    state = load_yolov5_state_dict(checkpoint)
    model, _ = build_privacy_model(state)
    trainable = freeze(model, options.frozen_layers)
    head = cast(ClassicHead, model.model[-1])
    loss_fn = YoloV5Loss(head)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": options.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=options.lr0,
        momentum=options.momentum,
        nesterov=True,
    )
    steps_per_epoch = math.ceil(len(samples) / options.batch)
    total = steps_per_epoch * options.epochs
    warmup = max(1, round(options.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warmup:
            return options.lr0 * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return options.lr0 * (0.1 + 0.9 * (1 + math.cos(math.pi * progress)) / 2)

    history: list[dict[str, float]] = []
    step, start = 0, time.perf_counter()
    for epoch in range(options.epochs):
        set_train_mode(model)
        sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
        for images, targets in batches(samples, options, rng):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss, parts = loss_fn(raw_levels(model, images), targets)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            sums["loss"] += float(loss.detach()) / steps_per_epoch
            for k, v in parts.items():
                sums[k] += v / steps_per_epoch
            step += 1
        history.append({"epoch": epoch + 1, **{k: round(v, 4) for k, v in sums.items()}})
        log(f"epoch {epoch + 1}/{options.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in sums.items()))
    seconds = time.perf_counter() - start
    model.eval()
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    photos = hashlib.sha256("\n".join(s.path.name for s in samples).encode()).hexdigest()[:16]
    extra = {
        "source": f"{checkpoint.name} sha256:{digest}, fine-tuned on {len(samples)} photos ({photos})",
        "finetune": json.dumps({k: v for k, v in asdict(options).items()}),
    }
    export_onnx(model, out, options.imgsz, PRIVACY_NAMES, extra)
    detector = Detector.from_path(out)
    if detector.names != PRIVACY_NAMES:
        raise ValueError(f"{out}: metadata read back as {detector.names}")
    detector.predict(np.full((options.imgsz, options.imgsz, 3), 114, np.uint8))
    return {
        "out": str(out),
        "photos": len(samples),
        "labelled_photos": sum(bool(s.boxes) for s in samples),
        "boxes": sum(len(s.boxes) for s in samples),
        "trainable_tensors": trainable,
        "options": asdict(options),
        "seconds": round(seconds, 1),
        "history": history,
    }
