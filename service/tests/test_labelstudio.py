"""The Label Studio loop against a real Label Studio server (scripts/labelstudio.sh, started by `make test`).

Frames with the model's boxes are pushed as tasks with predictions, annotated through the SDK as an
annotator would, pulled back as YOLO labels (checked line by line) and merged by the dataset builder.
Each test uses its own project (deleted afterwards) and its own image folder inside Label Studio's
document root, so runs never see each other's tasks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from service import labelstudio
from service.db.engine import make_sessionmaker, transaction
from service.db.store import ImageStore
from service.db.tables import (
    DamageSite,
    Decision,
    Frame,
    LabelStudioTask,
    ModelVersion,
    Observation,
    UploadBatch,
    Vehicle,
    point,
)
from service.labelstudio import LabelStudioError, holdout_split
from service.settings import Settings
from tests.fixtures import gps_jpeg

MODEL = "roadwatch-yolov5nu-v0-fp32@aab417621d4c"
W, H = 320, 240


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests with `make test` (it starts Label Studio)")
    return value


@pytest.fixture(scope="session")
def ls_env() -> dict[str, str]:
    return {
        "url": _env("ROADWATCH_TEST_LABELSTUDIO_URL"),
        "token": _env("ROADWATCH_TEST_LABELSTUDIO_TOKEN"),
        "root": _env("ROADWATCH_TEST_LABELSTUDIO_DOCUMENT_ROOT"),
    }


@pytest.fixture
def ls_settings(settings: Settings, ls_env: dict[str, str]) -> Iterator[Settings]:
    """Settings with a data folder inside Label Studio's document root and a project of its own."""
    root = Path(ls_env["root"])
    # Only the anonymized images inside Label Studio's root; originals and secrets stay outside it.
    data_dir = Path(tempfile.mkdtemp(prefix="roadwatch-test-", dir=root))
    title = f"roadwatch-test-{uuid.uuid4().hex[:10]}"
    test_settings = settings.model_copy(
        update={
            "image_root": data_dir / "images",
            "labelstudio_url": ls_env["url"],
            "labelstudio_token": SecretStr(ls_env["token"]),
            "labelstudio_project": title,
            "labelstudio_document_root": root,
            "labelstudio_holdout_percent": 50,
        }
    )
    yield test_settings
    try:
        conn = labelstudio.connect(test_settings)
        project = labelstudio.find_project(conn, title)
        if project is not None:
            conn.client.projects.delete(project.id)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def sessions(ls_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(ls_settings.database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def sha_in(split: str, percent: int = 50) -> str:
    """A random sha256 whose holdout split is ``split`` (found by trying; deterministic outcome)."""
    while True:
        sha = secrets.token_hex(32)
        if holdout_split(sha, percent) == split:
            return sha


def seed_frames(
    sessions: sessionmaker[Session],
    settings: Settings,
    specs: list[tuple[str, list[tuple[str, float, tuple[float, float, float, float]]]]],
) -> list[Frame]:
    """Frames (sha256, [(class, confidence, box)]) with stored images, observations and one site each."""
    store = ImageStore(settings.image_dir)
    frames = []
    with transaction(sessions) as s:
        vehicle = Vehicle(name=f"truck-{uuid.uuid4().hex[:6]}", token_hash=secrets.token_hex(32))
        model = s.scalar(select(ModelVersion).where(ModelVersion.name == MODEL))
        if model is None:
            model = ModelVersion(name=MODEL, sha256="a" * 64, file="x.onnx")
        s.add_all([vehicle, model])
        s.flush()
        batch = UploadBatch(vehicle_id=vehicle.id)
        s.add(batch)
        s.flush()
        for i, (sha, boxes) in enumerate(specs):
            when = datetime(2026, 10, 1, 9, tzinfo=UTC) + timedelta(minutes=i)
            store.put(sha, gps_jpeg(51.96, 7.62, when, seed=i, size=(W, H)))
            frame = Frame(
                sha256=sha,
                vehicle_id=vehicle.id,
                batch_id=batch.id,
                filename=f"f{i}.jpg",
                captured_at=when,
                position=point(51.96, 7.62),
                location_source="exif",
                width=W,
                height=H,
                status="done",
                image_key=sha,
                model_version_id=model.id,
            )
            s.add(frame)
            s.flush()
            for cls, conf, (x1, y1, x2, y2) in boxes:
                site = DamageSite(
                    class_name=cls,
                    position=point(51.96, 7.62),
                    first_seen=when,
                    last_seen=when,
                    max_confidence=conf,
                    model_version_id=model.id,
                )
                s.add(site)
                s.flush()
                s.add(
                    Observation(
                        frame_id=frame.id,
                        site_id=site.id,
                        model_version_id=model.id,
                        class_name=cls,
                        confidence=conf,
                        x1=x1,
                        y1=y1,
                        x2=x2,
                        y2=y2,
                    )
                )
            frames.append(frame)
    return frames


def rect(x: float, y: float, w: float, h: float, label: str, rotation: float = 0.0) -> dict[str, Any]:
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": W,
        "original_height": H,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
    }


def recorded(sessions: sessionmaker[Session]) -> dict[int, LabelStudioTask]:
    with sessions() as s:
        return {r.frame_id: r for r in s.scalars(select(LabelStudioTask))}


def test_push_annotate_pull_and_merge(ls_settings: Settings, sessions: sessionmaker[Session]) -> None:
    s_train, s_valid, s_empty, s_skip, s_none = (
        sha_in("train"),
        sha_in("valid"),
        sha_in("train"),
        sha_in("valid"),
        sha_in("train"),
    )
    frames = seed_frames(
        sessions,
        ls_settings,
        [
            (s_train, [("D00", 0.31, (32, 24, 96, 120)), ("D40", 0.93, (160, 120, 224, 168))]),
            (s_valid, [("D20", 0.55, (0, 0, 320, 48))]),
            (s_empty, [("D10", 0.42, (10, 10, 50, 30))]),
            (s_skip, [("D40", 0.97, (100, 100, 140, 140))]),
            (s_none, []),
        ],
    )
    ids = [f.id for f in frames]

    # uncertain: least certain detection first (0.31, 0.42, 0.55); frames without detections never.
    first = labelstudio.push(ls_settings, sessions, limit=3, strategy="uncertain")
    assert [t["frame_id"] for t in first["tasks"]] == [ids[0], ids[2], ids[1]]
    second = labelstudio.push(ls_settings, sessions, limit=10, strategy="uncertain")
    assert [t["frame_id"] for t in second["tasks"]] == [ids[3]]
    assert labelstudio.push(ls_settings, sessions, limit=10, strategy="uncertain")["sent"] == 0
    third = labelstudio.push(ls_settings, sessions, limit=10, strategy="random")
    assert [t["frame_id"] for t in third["tasks"]] == [ids[4]]
    assert labelstudio.push(ls_settings, sessions, limit=10, strategy="random")["sent"] == 0

    rows = recorded(sessions)
    assert sorted(rows) == sorted(ids)  # each frame once, with its task id and strategy
    assert {rows[i].strategy for i in ids[:4]} == {"uncertain"} and rows[ids[4]].strategy == "random"
    conn = labelstudio.connect(ls_settings)
    project_id = first["project_id"]
    tasks = {t.id: t for t in conn.client.tasks.list(project=project_id)}
    assert sorted(tasks) == sorted(r.task_id for r in rows.values())  # nothing sent twice

    # The prediction: model version, score (least certain box), boxes in percent of the image.
    task0 = tasks[rows[ids[0]].task_id]
    assert task0.data["sha256"] == s_train and task0.data["image"].startswith("/data/local-files/?d=")
    (pred,) = task0.predictions
    assert pred.model_version == MODEL and pred.score == pytest.approx(0.31)
    by_label = {r["value"]["rectanglelabels"][0]: r for r in pred.result}
    assert by_label["D40"]["value"]["x"] == pytest.approx(50.0) and by_label["D40"]["score"] == 0.93
    assert by_label["D00"]["value"]["width"] == pytest.approx(20.0)
    assert by_label["D00"]["value"]["height"] == pytest.approx(40.0)
    assert tasks[rows[ids[4]].task_id].predictions[0].result == []  # the model saw nothing there
    # Label Studio serves the stored (anonymized) image to its users.
    import httpx

    image = httpx.get(
        ls_settings.labelstudio_url + task0.data["image"],
        headers={"Authorization": f"Token {ls_settings.labelstudio_token.get_secret_value()}"},
    )
    assert image.status_code == 200
    assert image.content == ImageStore(ls_settings.image_dir).get(s_train)

    # An annotator corrects: class changed, one box added (rotated 90 degrees), one false box deleted...
    ann = conn.client.annotations.create(
        id=rows[ids[0]].task_id,
        result=[rect(10, 10, 20, 40, "D10"), rect(50, 50, 10, 20, "D40", rotation=90)],
    )
    conn.client.annotations.create(id=rows[ids[1]].task_id, result=[rect(0, 0, 100, 20, "D20")])
    conn.client.annotations.create(id=rows[ids[2]].task_id, result=[])  # no damage at all
    conn.client.annotations.create(id=rows[ids[3]].task_id, result=[], was_cancelled=True)  # skipped

    summary = labelstudio.pull(ls_settings, sessions)
    assert (summary["written"], summary["unfinished"], summary["unchanged"]) == (3, 2, 0)
    folder = ls_settings.corrections_dir
    assert (folder / "train" / "labels" / f"{s_train}.txt").read_text().splitlines() == [
        "1 0.200000 0.300000 0.200000 0.400000",
        # rotated about its top-left corner (50, 50): x 30..50, y 50..60
        "3 0.400000 0.550000 0.200000 0.100000",
    ]
    assert (
        folder / "valid" / "labels" / f"{s_valid}.txt"
    ).read_text() == "2 0.500000 0.100000 1.000000 0.200000\n"
    assert (folder / "train" / "labels" / f"{s_empty}.txt").read_text() == ""  # a negative example
    assert not list(folder.rglob(f"{s_skip}*")) and not list(folder.rglob(f"{s_none}*"))
    assert (folder / "train" / "images" / f"{s_train}.jpg").read_bytes() == ImageStore(
        ls_settings.image_dir
    ).get(s_train)
    rows = recorded(sessions)
    assert (rows[ids[0]].split, rows[ids[0]].n_boxes, rows[ids[0]].annotation_id) == ("train", 2, ann.id)
    assert rows[ids[1]].split == "valid" and rows[ids[3]].pulled_at is None

    # Pulling again changes nothing; an updated annotation is pulled again.
    assert labelstudio.pull(ls_settings, sessions)["unchanged"] == 3
    conn.client.annotations.update(ann.id, result=[rect(0, 50, 50, 50, "D00")])
    again = labelstudio.pull(ls_settings, sessions)
    assert (again["written"], again["unchanged"]) == (1, 2)
    assert (
        folder / "train" / "labels" / f"{s_train}.txt"
    ).read_text() == "0 0.250000 0.750000 0.500000 0.500000\n"

    # The dataset builder merges the corrections: train into train, the held-out valid into val only.
    from datasets.build import build_dataset

    stats = build_dataset([folder], ls_settings.data_dir / "merged", progress=False)
    merged = ls_settings.data_dir / "merged" / "labels"
    assert (merged / "train" / f"corrections_train_{s_train}.txt").read_text().splitlines() == [
        "0 0.250000 0.750000 0.500000 0.500000"
    ]
    assert (merged / "val" / f"corrections_valid_{s_valid}.txt").read_text().splitlines() == [
        "2 0.500000 0.100000 1.000000 0.200000"
    ]
    assert stats.images["train"] == 2 and stats.images["val"] == 1
    assert not list((merged / "train").glob(f"*{s_valid}*"))


def test_rejected_strategy_sends_frames_of_rejected_or_relabelled_sites(
    ls_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    frames = seed_frames(
        sessions,
        ls_settings,
        [(secrets.token_hex(32), [("D00", 0.9, (10, 10, 60, 60))]) for _ in range(4)],
    )
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    with transaction(sessions) as s:
        sites = {
            f.id: s.scalar(select(Observation.site_id).where(Observation.frame_id == f.id)) for f in frames
        }
        for frame, action, new_status, new_class, minutes in (
            (frames[0], "reject", "rejected", "D00", 1),
            (frames[1], "reclassify", "confirmed", "D40", 2),
            (frames[2], "confirm", "confirmed", "D00", 3),
        ):
            s.add(
                Decision(
                    site_id=sites[frame.id],
                    user_name="reviewer",
                    at=t0 + timedelta(minutes=minutes),
                    action=action,
                    reason="test",
                    previous_status="open",
                    new_status=new_status,
                    previous_class="D00",
                    new_class=new_class,
                    ranking_version="r1",
                )
            )
    result = labelstudio.push(ls_settings, sessions, limit=10, strategy="rejected")
    # latest decision first; the confirmed site and the undecided one are not sent
    assert [t["frame_id"] for t in result["tasks"]] == [frames[1].id, frames[0].id]
    assert {r.strategy for r in recorded(sessions).values()} == {"rejected"}


def test_errors_are_clear_and_nothing_is_marked_sent(
    ls_settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_frames(sessions, ls_settings, [(secrets.token_hex(32), [("D40", 0.5, (10, 10, 60, 60))])])
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(LabelStudioError, match="not reachable"):
        labelstudio.push(ls_settings.model_copy(update={"labelstudio_url": dead}), sessions)
    with pytest.raises(LabelStudioError, match="refused the API token"):
        labelstudio.push(ls_settings.model_copy(update={"labelstudio_token": SecretStr("0" * 40)}), sessions)
    with pytest.raises(LabelStudioError, match="ROADWATCH_LABELSTUDIO_URL is not set"):
        labelstudio.pull(ls_settings.model_copy(update={"labelstudio_url": None}), sessions)
    with pytest.raises(LabelStudioError, match="no project titled"):
        labelstudio.pull(ls_settings, sessions)

    # A project of that title with another label set is left alone.
    conn = labelstudio.connect(ls_settings)
    other = conn.client.projects.create(
        title=ls_settings.labelstudio_project,
        label_config='<View><Image name="image" value="$image"/><RectangleLabels name="label" '
        'toName="image"><Label value="crack"/><Label value="pothole"/></RectangleLabels></View>',
    )
    with pytest.raises(LabelStudioError, match=r"labels \['crack', 'pothole'\].*model's classes"):
        labelstudio.push(ls_settings, sessions)
    assert list(conn.client.tasks.list(project=other.id)) == []
    conn.client.projects.delete(other.id)
    assert recorded(sessions) == {}

    # The import itself fails (server gone mid-way): nothing recorded.
    import httpx
    from label_studio_sdk.projects.client import ProjectsClient

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise httpx.ConnectError("connection refused (test)")

    with monkeypatch.context() as m:
        m.setattr(ProjectsClient, "import_tasks", refuse)
        with pytest.raises(LabelStudioError, match="not reachable"):
            labelstudio.push(ls_settings, sessions)
    assert recorded(sessions) == {}
    assert labelstudio.push(ls_settings, sessions)["sent"] == 1


def test_a_task_sent_but_not_recorded_is_recovered_not_resent(
    ls_settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    (frame,) = seed_frames(sessions, ls_settings, [(secrets.token_hex(32), [("D10", 0.4, (5, 5, 50, 50))])])
    from label_studio_sdk.tasks.client import TasksClient

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("process killed after sending (test)")

    with monkeypatch.context() as m:  # the tasks are created, then the push dies before recording them
        m.setattr(TasksClient, "get", crash)
        with pytest.raises(RuntimeError, match="killed"):
            labelstudio.push(ls_settings, sessions)
    assert recorded(sessions) == {}
    result = labelstudio.push(ls_settings, sessions)
    assert (result["recovered"], result["sent"]) == (1, 0)
    conn = labelstudio.connect(ls_settings)
    (task,) = list(conn.client.tasks.list(project=result["project_id"]))
    assert recorded(sessions)[frame.id].task_id == task.id


def test_cli_push_and_pull(
    ls_settings: Settings, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import json

    from service.cli.main import main

    (frame,) = seed_frames(sessions, ls_settings, [(secrets.token_hex(32), [("D20", 0.6, (0, 0, 80, 60))])])
    for key, value in {
        "DATABASE_URL": ls_settings.database_url,
        "ROADWATCH_DATA_DIR": str(ls_settings.data_dir),
        "ROADWATCH_IMAGE_ROOT": str(ls_settings.image_dir),
        "ROADWATCH_LABELSTUDIO_URL": ls_settings.labelstudio_url,
        "ROADWATCH_LABELSTUDIO_TOKEN": ls_settings.labelstudio_token.get_secret_value(),
        "ROADWATCH_LABELSTUDIO_PROJECT": ls_settings.labelstudio_project,
        "ROADWATCH_LABELSTUDIO_DOCUMENT_ROOT": str(ls_settings.labelstudio_document_root),
    }.items():
        monkeypatch.setenv(key, str(value))
    assert main(["labelstudio", "push", "--limit", "5"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["sent"] == 1 and out["tasks"][0]["frame_id"] == frame.id
    assert out["strategy"] == "random"  # the default: it beat uncertain (bench/active_learning.py)
    assert main(["labelstudio", "pull"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["unfinished"] == 1
    monkeypatch.setenv("ROADWATCH_LABELSTUDIO_TOKEN", "wrong")
    with pytest.raises(SystemExit, match=r"error: Label Studio at .* refused the API token"):
        main(["labelstudio", "pull"])


def test_webhook_writes_the_annotation(ls_settings: Settings, sessions: sessionmaker[Session]) -> None:
    from fastapi.testclient import TestClient

    from service.api import labelstudio_webhook
    from service.app import create_app

    sha = sha_in("train")
    (frame,) = seed_frames(sessions, ls_settings, [(sha, [("D40", 0.3, (0, 0, 32, 24))])])
    pushed = labelstudio.push(ls_settings, sessions)
    task_id = pushed["tasks"][0]["task_id"]
    conn = labelstudio.connect(ls_settings)
    ann = conn.client.annotations.create(id=task_id, result=[rect(0, 0, 10, 10, "D40")])
    # What Label Studio posts: the task and the annotation as its API returns them.
    task = conn.client.tasks.get(str(task_id))
    payload = {
        "action": "ANNOTATION_CREATED",
        "task": {"id": task.id, "project": pushed["project_id"], "data": task.data},
        "annotation": conn.client.annotations.get(ann.id).model_dump(mode="json"),
    }
    app = create_app(ls_settings.model_copy(update={"labelstudio_webhook_secret": SecretStr("s3cret")}))
    app.include_router(labelstudio_webhook.router)
    with TestClient(app) as client:
        url = "/api/v1/labelstudio/webhook"
        assert client.post(url, json=payload).status_code == 401
        assert client.post(url, json=payload, headers={"X-Roadwatch-Webhook-Secret": "no"}).status_code == 401
        r = client.post(url, json=payload, headers={"X-Roadwatch-Webhook-Secret": "s3cret"})
        assert r.status_code == 200 and r.json()["outcome"] == "written", r.text
        # Malformed payloads are refused with a reason, never a server error.
        auth = {"X-Roadwatch-Webhook-Secret": "s3cret"}
        for bad in (
            {**payload, "task": {**payload["task"], "id": "12; drop"}},
            {**payload, "task": {**payload["task"], "id": True}},
            {**payload, "task": {**payload["task"], "project": None}, "project": {"id": "x"}},
            {**payload, "task": {**payload["task"], "data": ["not", "an", "object"]}},
            {**payload, "annotation": {**payload["annotation"], "result": {"x": 1}}},
            {**payload, "task": "nope"},
            {**payload, "annotation": {**payload["annotation"], "id": "7"}},
        ):
            r = client.post(url, json=bad, headers=auth)
            assert r.status_code == 422, (bad, r.status_code, r.text)
        assert client.post(url, json=["a", "list"], headers=auth).status_code == 422
    label = ls_settings.corrections_dir / "train" / "labels" / f"{sha}.txt"
    assert label.read_text() == "3 0.050000 0.050000 0.100000 0.100000\n"
    assert recorded(sessions)[frame.id].annotation_id == ann.id


def test_malformed_regions_are_skipped_not_errors() -> None:
    good = rect(10, 20, 30, 40, "D20")
    broken = [
        {**good, "value": {**good["value"], "x": "left"}},
        {**good, "value": {k: v for k, v in good["value"].items() if k != "width"}},
        {**good, "value": {**good["value"], "y": float("nan")}},
        {**good, "value": {**good["value"], "rotation": None, "height": [1]}},
        {**good, "value": "not a dict"},
        "not a region",
        None,
    ]
    lines, skipped = labelstudio.annotation_lines([good, *broken])
    assert lines == ["2 0.250000 0.400000 0.300000 0.400000"] and skipped == len(broken)
    assert labelstudio.annotation_lines({"not": "a list"}) == ([], 0)  # type: ignore[arg-type]
    assert labelstudio.final_annotation(["junk", {"id": 1, "result": []}]) == {"id": 1, "result": []}


def test_site_detail_names_the_model_version_of_each_observation(client, staff, app) -> None:  # type: ignore[no-untyped-def]
    from service.tests.web_seed import seed_sites

    site = seed_sites(app)[0]
    body = client.get(f"/api/v1/sites/{site.public_id}", auth=staff["viewer"]).json()
    (obs,) = body["properties"]["observation_list"]
    assert obs["model_version"] == "roadwatch-yolov5nu-v0-fp32@aab417621d4c" and obs["model_version_id"]
