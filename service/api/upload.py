"""Upload API for vehicles: ``POST /api/v1/batches`` and the resume helper ``/frames/missing``."""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from geotag.gps import Track, TrackError, parse_track
from service.access.deps import SessionDep, SettingsDep, VehicleDep
from service.db.frames import BatchResult, create_batch, finish_batch, ingest_image
from service.db.tables import Frame
from service.worker.jobs import defer_frames

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["upload"])


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (PostgreSQL refuses them in the batch's stored metadata)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf, which would be stored as Infinity
        raise ValueError(f"{text} is out of range")
    return value


async def _read_limited(upload: UploadFile, limit: int) -> bytes | None:
    """The part's bytes, or None when it is larger than ``limit`` (read no further than that)."""
    data = await upload.read(limit + 1)
    return None if len(data) > limit else data


@router.post("/batches", status_code=status.HTTP_202_ACCEPTED, summary="Upload photos (a vehicle's batch)")
async def upload_batch(
    request: Request,
    vehicle: VehicleDep,
    settings: SettingsDep,
    images: Annotated[list[UploadFile], File(description="JPEG photos")],
    track: Annotated[UploadFile | None, File(description="GPX or NMEA track of the drive")] = None,
    metadata: Annotated[
        str | None, Form(description="JSON: clock_offset_s, images: {filename: {...}}")
    ] = None,
) -> JSONResponse:
    if len(images) > settings.max_images_per_batch:
        raise HTTPException(
            413, f"too many images in one batch: {len(images)}, the limit is {settings.max_images_per_batch}"
        )
    meta: dict[str, Any] = {}
    if metadata:
        try:
            meta = json.loads(metadata, parse_constant=_reject_constant, parse_float=_finite_float)
        except (json.JSONDecodeError, ValueError) as exc:
            raise HTTPException(422, f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise HTTPException(422, "metadata must be a JSON object")
    try:
        clock_offset = float(meta.get("clock_offset_s", 0.0))
        if not math.isfinite(clock_offset):
            raise ValueError(clock_offset)
    except (TypeError, ValueError) as exc:
        raise HTTPException(422, "metadata.clock_offset_s must be a number of seconds") from exc
    per_image = meta.get("images", {})
    if not isinstance(per_image, dict):
        raise HTTPException(422, "metadata.images must map file names to objects")
    parsed_track: Track | None = None
    if track is not None:
        raw = await _read_limited(track, settings.max_track_bytes)
        if raw is None:
            raise HTTPException(413, f"track larger than {settings.max_track_bytes} bytes")
        try:
            parsed_track = parse_track(raw, track.filename or "track")
        except TrackError as exc:
            raise HTTPException(422, f"track: {exc}") from exc

    sessions = request.app.state.sessions
    originals = request.app.state.originals
    batch_id = await run_in_threadpool(
        create_batch, sessions, vehicle, {k: v for k, v in meta.items() if k != "images"}
    )
    result = BatchResult(str(batch_id))
    for upload in images:
        name = upload.filename or "unnamed.jpg"
        data = await _read_limited(upload, settings.max_image_bytes)
        if data is None:
            from service.db.frames import ImageResult

            result.images.append(
                ImageResult(name, "rejected", reason=f"file larger than {settings.max_image_bytes} bytes")
            )
            continue
        image_meta = per_image.get(name, {})
        outcome = await run_in_threadpool(
            ingest_image,
            sessions,
            originals,
            vehicle,
            batch_id,
            name,
            data,
            track=parsed_track,
            image_meta=image_meta if isinstance(image_meta, dict) else {},
            clock_offset_s=clock_offset,
            max_pixels=settings.max_pixels,
            track_max_gap_s=settings.track_max_gap_s,
        )
        result.images.append(outcome)
    await run_in_threadpool(finish_batch, sessions, result)
    queued = result.frame_ids_to_process()
    if queued:
        try:  # stored frames are safe; a failed enqueue is repaired by the workers' janitor
            await run_in_threadpool(defer_frames, request.app.state.jobs, queued)
        except Exception:
            log.exception("could not queue frames %s; the janitor will", queued)
    counts = result.counts()
    body = {"batch_id": result.batch_id, "counts": counts, "images": [i.as_dict() for i in result.images]}
    if counts.get("rejected", 0) == len(images):
        body["detail"] = "no image in this batch was accepted: see images[].reason"
        return JSONResponse(body, status_code=422)
    return JSONResponse(body, status_code=202)


class MissingRequest(BaseModel):
    sha256: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = Field(max_length=5000)


@router.post("/frames/missing", summary="Which of these sha256 hashes the server does not have yet")
def missing_frames(body: MissingRequest, session: SessionDep, vehicle: VehicleDep) -> dict[str, list[str]]:
    known = set(session.scalars(select(Frame.sha256).where(Frame.sha256.in_(body.sha256))))
    return {"missing": [h for h in body.sha256 if h not in known]}
