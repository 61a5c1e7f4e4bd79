"""Detector speed: our ONNX Runtime path vs ultralytics' own predict, fp32 vs int8, and the floor.

    python bench/detector.py FOLDER --weights weights/X-fp32.onnx [--int8 weights/X-int8.onnx]
        [--pt runs/.../best.pt] [--threads 1] [--n 50]

The compute floor is the model's GFLOPs divided by the matrix-multiply GFLOP/s measured here with
the same thread count (ONNX Runtime MatMul on float32), so "ratio to floor" says how close the
whole path (letterbox, tensor, inference, box decoding and NMS; images are decoded before timing)
comes to pure arithmetic. A second table splits our time by step.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import summary_ms, table, time_calls, write_result
from detector import Detector, read_image


def model_gflops(path: Path, input_hw: tuple[int, int] | None = None) -> float:
    """Multiply-adds x 2 of every Conv/MatMul/Gemm in the graph, with shapes inferred; ``input_hw``: the
    input's height and width for a model exported with a dynamic size (batch 1)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    if input_hw is not None:
        dims = model.graph.input[0].type.tensor_type.shape.dim
        for dim, value in zip(dims, (1, 3, *input_hw), strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)
    }
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    flops = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = inits.get(node.input[1]) or shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            if w and out and len(out) == 4:
                flops += 2.0 * np.prod(out) * np.prod(w[1:])  # out elems x (cin/groups * kh * kw)
        elif node.op_type in ("MatMul", "Gemm"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a and out:
                flops += 2.0 * np.prod(out) * a[-1]
    return flops / 1e9


def matmul_gflops(threads: int, n: int = 1024) -> float:
    """Float32 matrix-multiply throughput of ONNX Runtime with ``threads`` intra-op threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "mm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    samples = time_calls(lambda: sess.run(None, {"a": a, "b": a}), repeat=10)
    return 2 * n**3 / min(samples) / 1e9


def stage_ms(det: Detector, images: list[np.ndarray]) -> dict[str, float]:
    """Median ms of each step of :meth:`Detector.predict`, timed one by one over ``images``."""
    import time

    from detector.postprocess import decode, nms
    from detector.preprocess import letterbox, to_tensor, to_uint8_tensor

    times: dict[str, list[float]] = {
        "letterbox_ms": [],
        "tensor_ms": [],
        "inference_ms": [],
        "postprocess_ms": [],
    }
    for image in images[:2] + images:  # two warm-up calls, dropped below
        t0 = time.perf_counter()
        boxed, _ = letterbox(image, det.imgsz)
        t1 = time.perf_counter()
        tensor = (to_uint8_tensor if det.uint8_input else to_tensor)([boxed])
        t2 = time.perf_counter()
        head = det.session.run(None, {det.input_name: tensor})[0][0]
        t3 = time.perf_counter()
        boxes, scores, classes = decode(head, 0.25, False)
        nms(boxes, scores, classes, 0.45, 300)
        t4 = time.perf_counter()
        for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[key].append(seconds)
    return {key: 1000 * float(np.median(values[2:])) for key, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weights", required=True, type=Path)
    parser.add_argument("--int8", type=Path)
    parser.add_argument("--pt", type=Path, help="the PyTorch checkpoint, for ultralytics' eager predict")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--label", help="suffix of the results file (detector-<threads>t[-label].json)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[
        : args.n
    ]
    images = [read_image(p) for p in paths]
    rows = []

    stages = []

    def bench_ours(label: str, path: Path) -> dict:
        det = Detector.from_path(path, threads=args.threads)
        it = iter(range(10**9))
        samples = time_calls(lambda: det.predict(images[next(it) % len(images)]), repeat=len(images))
        stages.append({"path": label, **stage_ms(det, images)})
        return {"path": label, **summary_ms(samples), "imgsz": det.imgsz}

    rows.append(bench_ours("ours onnxruntime fp32", args.weights))
    if args.int8:
        rows.append(bench_ours("ours onnxruntime int8", args.int8))

    from training.offline import configure_offline

    configure_offline()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    imgsz = rows[0]["imgsz"]
    # ultralytics opens the ONNX file with onnxruntime's default threads (all cores): not like for like.
    refs = [("ultralytics predict, same ONNX (ORT default threads)", YOLO(str(args.weights), task="detect"))]
    if args.pt:
        refs.append(("ultralytics predict, PyTorch", YOLO(str(args.pt))))
    for label, model in refs:
        counter = iter(range(10**9))
        samples = time_calls(
            lambda m=model, c=counter: m.predict(images[next(c) % len(images)], imgsz=imgsz, verbose=False),
            repeat=len(images),
        )
        rows.append({"path": label, **summary_ms(samples), "imgsz": imgsz})

    gflops = model_gflops(args.weights)
    mm = matmul_gflops(args.threads)
    floor_ms = 1000 * gflops / mm
    base = rows[0]["median_ms"]
    for row in rows:
        row["vs_ours_fp32"] = row["median_ms"] / base
        row["vs_floor"] = row["median_ms"] / floor_ms
    for stage in stages:
        stage["inference_vs_floor"] = stage["inference_ms"] / floor_ms
    print(table(rows, ["path", "median_ms", "p95_ms", "vs_ours_fp32", "vs_floor"]))
    print("\nwhere our time goes (median ms per image):")
    print(
        table(
            stages,
            ["path", "letterbox_ms", "tensor_ms", "inference_ms", "postprocess_ms", "inference_vs_floor"],
        )
    )
    if args.int8:
        print(f"\nint8 is {base / rows[1]['median_ms']:.2f}x as fast as fp32 (whole path)")
    print(
        f"\nmodel {gflops:.2f} GFLOPs at {imgsz}px; matmul {mm:.1f} GFLOP/s with {args.threads} thread(s); "
        f"compute floor {floor_ms:.1f} ms/image; {len(images)} images from {args.folder}"
    )
    path = write_result(
        f"detector-{args.threads}t" + (f"-{args.label}" if args.label else ""),
        {
            "weights": args.weights.name,
            "int8": args.int8.name if args.int8 else None,
            "threads": args.threads,
            "images": len(images),
            "gflops": gflops,
            "matmul_gflops_per_s": mm,
            "floor_ms": floor_ms,
            "int8_speedup": base / rows[1]["median_ms"] if args.int8 else None,
            "rows": rows,
            "stages": stages,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
