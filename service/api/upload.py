"""Upload API for vehicles: ``POST /api/v1/batches`` and the resume helper ``/frames/missing``."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from geotag import Track, TrackError, parse_track
from service.access.deps import SessionDep, SettingsDep, VehicleDep
from service.api.schemas import BatchOut, ImageResultOut, MissingOut
from service.db import profiling
from service.db.frames import BatchResult, ImageResult, create_batch, finish_batch, ingest_image
from service.db.tables import Frame, Vehicle
from service.domain.statuses import FrameStatus, UploadStatus
from service.errors import InvalidInput
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


MAX_METADATA_DEPTH = 32  # objects and arrays inside each other; real metadata needs 3
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')  # a string (skipped) or a bracket


def _nesting_depth(raw: str, limit: int) -> int:
    """How deep JSON objects and arrays nest in ``raw`` (strings skipped), counting no further than
    ``limit + 1``: checked before ``json.loads``, which would recurse that deep."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif token in "]}":
            depth -= 1
    return deepest


async def _read_limited(upload: UploadFile, limit: int) -> bytes | None:
    """The part's bytes, or None when it is larger than ``limit`` (read no further than that)."""
    data = await upload.read(limit + 1)
    return None if len(data) > limit else data


class UploadMetadata(BaseModel):
    """The optional ``metadata`` part of an upload: a clock offset for the track, per-image fields
    (``captured_at``, ``lat``, ``lon``, ``heading``), and anything else the client wants kept with the batch."""

    model_config = ConfigDict(extra="allow")
    clock_offset_s: float = Field(
        0.0, allow_inf_nan=False, description="camera clock minus GPS time, seconds"
    )
    images: dict[str, Any] = Field(default_factory=dict, description="file name -> that image's fields")

    @classmethod
    def parse(cls, raw: str | None) -> UploadMetadata:
        """``raw`` JSON checked, with one clear message per problem (never a server error)."""
        if not raw:
            return cls()
        if _nesting_depth(raw, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise InvalidInput(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        try:
            data = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput("metadata must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            field = str(exc.errors()[0]["loc"][0]) if exc.errors() and exc.errors()[0]["loc"] else ""
            if field == "images":
                raise InvalidInput("metadata.images must map file names to objects") from exc
            raise InvalidInput("metadata.clock_offset_s must be a number of seconds") from exc

    def batch_fields(self) -> dict[str, Any]:
        """What is stored with the batch: everything but the per-image part."""
        return self.model_dump(exclude={"images"}, exclude_unset=True)

    def image_fields(self, name: str) -> dict[str, Any]:
        fields = self.images.get(name, {})
        return fields if isinstance(fields, dict) else {}


async def _read_track(track: UploadFile | None, limit: int) -> Track | None:
    if track is None:
        return None
    raw = await _read_limited(track, limit)
    if raw is None:
        raise HTTPException(413, f"track larger than {limit} bytes")
    try:  # CPU work of up to max_track_bytes: off the event loop
        return await run_in_threadpool(parse_track, raw, track.filename or "track")
    except TrackError as exc:
        raise HTTPException(422, f"track: {exc}") from exc


async def _ingest_all(
    request: Request,
    vehicle: Vehicle,
    images: list[UploadFile],
    meta: UploadMetadata,
    track: Track | None,
) -> BatchResult:
    """Store every image of the batch (each in its own transaction) and the batch's summary."""
    settings, sessions = request.app.state.settings, request.app.state.sessions
    batch_id = await run_in_threadpool(create_batch, sessions, vehicle, meta.batch_fields())
    result = BatchResult(str(batch_id))
    for upload in images:
        name = upload.filename or "unnamed.jpg"
        data = await _read_limited(upload, settings.max_image_bytes)
        if data is None:
            reason = f"file larger than {settings.max_image_bytes} bytes"
            result.images.append(ImageResult(name, UploadStatus.REJECTED, reason=reason))
            continue
        outcome = await run_in_threadpool(
            ingest_image,
            sessions,
            request.app.state.originals,
            vehicle,
            batch_id,
            name,
            data,
            track=track,
            image_meta=meta.image_fields(name),
            clock_offset_s=meta.clock_offset_s,
            max_pixels=settings.max_pixels,
            track_max_gap_s=settings.track_max_gap_s,
        )
        result.images.append(outcome)
    await run_in_threadpool(finish_batch, sessions, result)
    return result


@profiling.profiled("queue")
def _defer(jobs: Any, frame_ids: list[int]) -> int:
    return defer_frames(jobs, frame_ids)


@router.post(
    "/batches",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload photos (a vehicle's batch)",
    responses={202: {"model": BatchOut}, 422: {"model": BatchOut, "description": "no image was accepted"}},
)
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
    meta = await run_in_threadpool(UploadMetadata.parse, metadata)
    result = await _ingest_all(
        request, vehicle, images, meta, await _read_track(track, settings.max_track_bytes)
    )
    queued = result.frame_ids_to_process()
    if queued:
        try:  # stored frames are safe; a failed enqueue is repaired by the workers' janitor
            await run_in_threadpool(_defer, request.app.state.jobs, queued)
        except Exception:  # whatever the queue raised: the frames are stored, the janitor queues them
            log.exception("could not queue frames %s; the janitor will", queued)
    counts = result.counts()
    body = BatchOut(
        batch_id=result.batch_id, counts=counts, images=[ImageResultOut(**i.as_dict()) for i in result.images]
    ).model_dump(exclude_none=True)
    if counts.get(UploadStatus.REJECTED, 0) == len(images):
        body["detail"] = "no image in this batch was accepted: see images[].reason"
        return JSONResponse(body, status_code=422)
    return JSONResponse(body, status_code=202)


class MissingRequest(BaseModel):
    sha256: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = Field(max_length=5000)


@router.post("/frames/missing", summary="Which of these sha256 hashes this vehicle has not sent yet")
def missing_frames(body: MissingRequest, session: SessionDep, vehicle: VehicleDep) -> MissingOut:
    # Per vehicle: what other vehicles sent is none of its business; a frame that failed for good may
    # be sent again.
    known = set(
        session.scalars(
            select(Frame.sha256).where(
                Frame.sha256.in_(body.sha256),
                Frame.vehicle_id == vehicle.id,
                Frame.status != FrameStatus.FAILED,
            )
        )
    )
    return MissingOut(missing=[h for h in body.sha256 if h not in known])
