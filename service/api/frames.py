"""Frame images (only anonymized copies, boxes drawn on request) and the transparency record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from service.access.deps import SessionDep, ViewerDep
from service.db.tables import Frame, Observation
from service.errors import Gone, NotFound

router = APIRouter(prefix="/api/v1", tags=["read"])
RED = (0, 0, 255)


def draw_boxes(jpeg: bytes, observations: Iterable[Observation]) -> bytes:
    """The image with each observation's box and label drawn; unchanged if it cannot be decoded."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return jpeg
    for obs in observations:
        p1, p2 = (int(obs.x1), int(obs.y1)), (int(obs.x2), int(obs.y2))
        cv2.rectangle(image, p1, p2, RED, 3)
        label = f"{obs.class_name} {obs.confidence:.2f}"
        cv2.putText(image, label, (p1[0], max(p1[1] - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, RED, 2)
    _ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return bytes(encoded.tobytes())


@router.get("/frames/{frame_id}/image", summary="A frame's stored image, boxes drawn on request")
def frame_image(
    frame_id: int, request: Request, session: SessionDep, user: ViewerDep, boxes: bool = False
) -> Response:
    frame = session.get(Frame, frame_id) if 0 < frame_id < 2**63 else None  # bigint ids
    if frame is None:
        raise NotFound(f"no frame {frame_id}")
    if frame.image_deleted_at is not None:
        raise Gone(f"the image of frame {frame_id} was deleted after the retention period")
    if not frame.image_key:  # only anonymized copies are ever shown
        raise NotFound(f"frame {frame_id} is not anonymized yet")
    try:
        data = request.app.state.store.get(frame.image_key)
    except FileNotFoundError as exc:
        raise Gone(f"the image of frame {frame_id} was deleted (retention)") from exc
    if boxes:
        data = draw_boxes(data, session.scalars(select(Observation).where(Observation.frame_id == frame_id)))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.get("/transparency", summary="Transparency record: AI register entry and record of processing")
def transparency(request: Request, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    from service.db.transparency import transparency_record
    from service.worker.context import ranking_config

    settings = request.app.state.settings
    return transparency_record(session, settings, ranking_config(settings))
