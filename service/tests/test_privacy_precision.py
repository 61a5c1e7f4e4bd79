"""The privacy model's precision (ROADWATCH_PRIVACY_PRECISION): validated, loaded through the service's own
paths, named in the transparency record; the int8 file blurs the people in the sample street photos as the
fp32 one does (real models, weights/PRIVACY_MODEL.md has the audit of both)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from detector import decode_image
from service.api.open311 import privacy_detector
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.transparency import transparency_record
from service.domain.anonymize import (
    COARSE_MIN_CONFIDENCE,
    COARSE_PASS,
    PrivacyConfig,
    anonymize,
    load_privacy_detector,
)
from service.domain.ranking import DEFAULT_CONFIG
from service.settings import Settings

URL = "postgresql+psycopg://x/y"
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "ultralytics"
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def test_precision_setting_picks_the_shipped_file(monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings(database_url=URL)
    # each file at its operating point (weights/PRIVACY_MODEL.md, "Operating point")
    assert default.privacy_precision == "int8"
    assert default.privacy_model_file() == WEIGHTS / "privacy-persons-vehicles-int8.onnx"
    assert default.privacy_threshold() == 0.09
    monkeypatch.setenv("ROADWATCH_PRIVACY_PRECISION", "fp32")
    fp32 = Settings(database_url=URL)
    assert fp32.privacy_model_file() == WEIGHTS / "privacy-persons-vehicles.onnx"
    assert fp32.privacy_threshold() == 0.10
    # the coarse second pass, as the domain's defaults (weights/PRIVACY_MODEL.md, "Views")
    assert (default.privacy_coarse_pass, default.privacy_coarse_min_confidence) == (
        COARSE_PASS,
        COARSE_MIN_CONFIDENCE,
    )
    monkeypatch.setenv("ROADWATCH_PRIVACY_MIN_CONFIDENCE", "0.05")  # a city's own choice wins
    assert Settings(database_url=URL).privacy_threshold() == 0.05
    monkeypatch.delenv("ROADWATCH_PRIVACY_MIN_CONFIDENCE")
    for wrong in ("fp16", "INT8", ""):
        monkeypatch.setenv("ROADWATCH_PRIVACY_PRECISION", wrong)
        with pytest.raises(ValidationError, match="privacy_precision"):
            Settings(database_url=URL)


def person_boxes(image: np.ndarray, detector) -> list[tuple[int, int, int, int]]:  # type: ignore[no-untyped-def]
    found = detector.predict(image, conf=PrivacyConfig().min_confidence, multi_label=True)
    return [tuple(int(v) for v in d.box) for d in found if d.class_name == "person"]


@pytest.mark.parametrize("photo", ["bus.jpg", "zidane.jpg"])
def test_int8_model_blurs_the_people_fp32_blurs(photo: str) -> None:
    image = decode_image((SAMPLES / photo).read_bytes())
    config = PrivacyConfig(horizon=None)  # the model alone: no band to hide a miss
    fp32 = load_privacy_detector(Settings(database_url=URL, privacy_precision="fp32").privacy_model_file())
    int8_settings = Settings(database_url=URL, privacy_precision="int8")
    app = SimpleNamespace(state=SimpleNamespace(settings=int8_settings))  # what open311 reads of the app
    int8 = privacy_detector(app)  # the Open311 intake's loader: the file the setting names, loaded once
    assert int8 is privacy_detector(app) and int8.uint8_input  # the int8 file takes the uint8 pixels

    people = person_boxes(image, fp32)
    assert len(people) >= 2, people  # bus.jpg: 3 pedestrians, zidane.jpg: 2 men
    assert len(person_boxes(image, int8)) >= len(people)
    out, report = anonymize(image, int8, config)
    destroyed = np.zeros(image.shape[:2], bool)
    for b in report.boxes:
        x1, y1, x2, y2 = b.box
        destroyed[y1:y2, x1:x2] = True
    for x1, y1, x2, y2 in people:
        assert destroyed[y1:y2, x1:x2].mean() >= 0.95, (photo, (x1, y1, x2, y2))
        changed = np.abs(out[y1:y2, x1:x2].astype(int) - image[y1:y2, x1:x2].astype(int)).mean()
        assert changed > 8, (photo, (x1, y1, x2, y2), changed)  # destroyed, not just marked


def test_transparency_record_names_the_privacy_model_in_use(settings: Settings) -> None:
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        for precision, name in [
            ("fp32", "privacy-persons-vehicles"),
            ("int8", "privacy-persons-vehicles-int8"),
        ]:
            chosen = settings.model_copy(update={"privacy_precision": precision})
            with transaction(make_sessionmaker(engine)) as session:
                record = transparency_record(session, chosen, DEFAULT_CONFIG)
            assert record["safeguards"]["privacy_model"].startswith(f"weights/{name}.onnx "), record[
                "safeguards"
            ]
            assert record["safeguards"]["privacy_min_confidence"] == {"fp32": 0.10, "int8": 0.09}[precision]
    finally:
        engine.dispose()
