from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from datasets import LabelFormatError, SourceError
from datasets.build import build_dataset
from datasets.splits import block_split
from datasets.voc import parse_voc
from datasets.yolo import parse_yolo_line

ROOT = Path(__file__).resolve().parents[2]

VOC = """<annotation>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  {objects}
</annotation>
"""
OBJ = "<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def make_rdd(root: Path, frames: dict[int, list[tuple[str, int, int, int, int]]], size: int = 100) -> Path:
    """An RDD2022-style tree: <root>/Testland/train/{images,annotations/xmls}."""
    base = root / "Testland" / "train"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "xmls").mkdir(parents=True)
    for number, objects in frames.items():
        stem = f"Testland_{number:06d}"
        Image.new("RGB", (size, size), (90, 90, 90)).save(base / "images" / f"{stem}.jpg")
        objs = "".join(OBJ.format(name=n, x1=a, y1=b, x2=c, y2=d) for n, a, b, c, d in objects)
        (base / "annotations" / "xmls" / f"{stem}.xml").write_text(VOC.format(w=size, h=size, objects=objs))
    return root


def make_polygon_set(root: Path) -> Path:
    """A Roboflow-style export with Indonesian class names and polygon labels."""
    root.mkdir(parents=True)
    names = ["Retak-Buaya", "Retak-Memanjang", "Retak-Melintang", "Lubang"]
    (root / "data.yaml").write_text(yaml.safe_dump({"nc": 4, "names": names}))
    for split, lines in {
        "train": ["3 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6", "1 0.5 0.5 0.2 0.1"],
        "valid": [],
    }.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        Image.new("RGB", (64, 32)).save(root / split / "images" / "img_a.jpg")
        (root / split / "labels" / "img_a.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root


def test_block_split_is_contiguous_and_deterministic() -> None:
    numbers = [5, 1, 3, 2, 4, 0, 9, 8, 7, 6]
    assert block_split(numbers, val_fraction=0.3) == ["train"] * 6 + ["val"] * 3 + ["train"]
    assert block_split(numbers, val_start=8).count("val") == 2
    with pytest.raises(ValueError, match="val_fraction"):
        block_split(numbers, val_fraction=1.5)


def test_rdd_and_polygons_convert_line_by_line(tmp_path: Path) -> None:
    rdd = make_rdd(
        tmp_path / "rdd",
        {
            0: [("D00", 10, 20, 30, 60), ("Repair", 0, 0, 50, 50)],
            1: [("D40", 50, 50, 100, 100)],
            2: [("Repair", 0, 0, 10, 10)],
            3: [("D99", 1, 1, 2, 2), ("D20", 0, 0, 100, 10)],
        },
    )
    poly = make_polygon_set(tmp_path / "poly")
    out = tmp_path / "ds"
    stats = build_dataset([rdd, poly], out, val_start=3, progress=False)

    labels = out / "labels"
    assert (
        labels / "train" / "rdd_Testland_000000.txt"
    ).read_text() == "0 0.200000 0.400000 0.200000 0.400000\n"
    assert (
        labels / "train" / "rdd_Testland_000001.txt"
    ).read_text() == "3 0.750000 0.750000 0.500000 0.500000\n"
    assert (labels / "train" / "rdd_Testland_000002.txt").read_text() == ""  # only Repair: a negative
    assert (
        labels / "val" / "rdd_Testland_000003.txt"
    ).read_text() == "2 0.500000 0.050000 1.000000 0.100000\n"
    assert (labels / "train" / "poly_train_img_a.txt").read_text().splitlines() == [
        "3 0.200000 0.400000 0.200000 0.400000",  # Lubang polygon -> pothole box (min/max)
        "0 0.500000 0.500000 0.200000 0.100000",  # Retak-Memanjang box -> longitudinal
    ]
    assert (labels / "val" / "poly_valid_img_a.txt").read_text() == ""
    assert (out / "images" / "train" / "rdd_Testland_000000.jpg").exists()

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "D00", 1: "D10", 2: "D20", 3: "D40"}
    assert Path(data["path"]).is_absolute()
    assert stats.unknown == {"D99": 1} and stats.dropped == {"Repair": 2}
    assert stats.images == {"train": 4, "val": 2} and stats.empty_images == {"train": 1, "val": 1}
    assert "UNKNOWN class names" in stats.table() and "D99 1" in stats.table()
    assert json.loads((out / "stats.json").read_text())["boxes"]["train"] == {"D00": 2, "D40": 2}


def test_keep_repair_adds_a_fifth_class(tmp_path: Path) -> None:
    rdd = make_rdd(tmp_path / "rdd", {0: [("Repair", 0, 0, 50, 50)]})
    build_dataset([rdd], tmp_path / "ds", keep_repair=True, val_fraction=0.0, progress=False)
    assert (tmp_path / "ds" / "labels" / "train" / "rdd_Testland_000000.txt").read_text().startswith("4 ")


def test_malformed_xml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text("<annotation>\n<size><width>10</width>\n<oops></annotation>")
    with pytest.raises(LabelFormatError, match=r"x\.xml:3: malformed XML"):
        parse_voc(path)


def test_invalid_bndbox_names_the_object(tmp_path: Path) -> None:
    path = tmp_path / "x.xml"
    path.write_text(
        VOC.format(w=10, h=10, objects="<object><name>D00</name><bndbox><xmin>a</xmin></bndbox></object>")
    )
    with pytest.raises(LabelFormatError, match="object 0 \\(D00\\)"):
        parse_voc(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [("0 0.5 0.5", "got 2"), ("x 0.5 0.5 0.1 0.1", "expected numbers"), ("7 0.5 0.5 0.1 0.1", "class id 7")],
)
def test_bad_yolo_line_names_file_and_line(line: str, message: str) -> None:
    with pytest.raises(LabelFormatError, match=f"labels.txt:4: .*{message}"):
        parse_yolo_line(line, ["a", "b"], Path("labels.txt"), 4)


def test_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no layout recognised"):
        build_dataset([tmp_path / "empty"], tmp_path / "ds", progress=False)


def test_cli_builds_and_reports(tmp_path: Path) -> None:
    rdd = make_rdd(tmp_path / "rdd", {0: [("D10", 1, 1, 50, 50)], 1: [("D10", 1, 1, 50, 50)]})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "datasets",
            "build",
            "--out",
            str(tmp_path / "ds"),
            str(rdd),
            "--val-start",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images"] == {"train": 1, "val": 1}
    assert "split" in result.stderr and "D10" in result.stderr  # the table
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "datasets",
            "build",
            "--out",
            str(tmp_path / "x"),
            str(rdd),
            "--class-map",
            "a=Z",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--class-map" in bad.stderr
