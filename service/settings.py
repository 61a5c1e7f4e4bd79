"""Service configuration from the environment (prefix ``ROADWATCH_``; ``DATABASE_URL`` as is).

Built once in ``create_app()`` or the CLI, never at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROADWATCH_", extra="ignore")

    database_url: str = Field(validation_alias=AliasChoices("DATABASE_URL", "ROADWATCH_DATABASE_URL"))
    data_dir: Path = PROJECT_ROOT / "var"
    # None: the default model of weights/manifest.json.
    model_path: Path | None = None
    # ONNX Runtime intra-op threads per model in each worker (several 1-thread workers beat one with many).
    threads: int = Field(1, ge=1, le=64)
    detect_conf: float = Field(0.25, ge=0, le=1)
    detect_iou: float = Field(0.45, ge=0, le=1)
    max_image_bytes: int = 25 * 1024 * 1024
    # Decoded size: a 5000 x 4000 camera (20 MP) fits; a small file declaring more is refused undecoded.
    max_pixels: int = Field(20_000_000, ge=1)
    max_images_per_batch: int = 200
    # A drive of hours as NMEA is a few MB; parsing runs in a worker thread (service/api/upload.py).
    max_track_bytes: int = 5 * 1024 * 1024
    # Request bodies (service/access/limits.py, checked before they are read): every request but an
    # upload batch at most this; a batch at most max_batch_bytes (None: every image and the track at
    # their limits plus max_body_bytes for the metadata).
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_batch_bytes: int | None = Field(None, ge=1024)
    # Measured on simulated drives (bench/association.py): 4 m once the drive's offset is applied.
    association_radius_m: float = 4.0
    # Where a drive without a known GPS offset looks for known sites: two drives' errors of up to 5 m
    # each can differ by 10 m (bench/association.py).
    association_search_m: float = 12.0
    track_max_gap_s: float = 30.0
    ranking_config: Path | None = None
    # Condition grades per road section (service/domain/grades.py); None: the shipped grading.yaml.
    grading_config: Path | None = None
    # Repairs verified by routine drives: this many usable passes over the spot without seeing the damage
    # confirm a repair; an open site not seen on this many passes goes to the "not seen again" queue.
    verify_passes: int = Field(3, ge=1, le=50)
    # Worker liveness: a job whose worker sent no heartbeat for this long is retried.
    heartbeat_interval_s: float = 5.0
    stalled_after_s: float = 30.0
    # A frame whose worker died this often while processing it fails (with the reason) instead of being
    # retried for ever; its upload is kept this many days for inspection (admins see failed frames).
    max_frame_stalls: int = Field(3, ge=1)
    failed_upload_keep_days: float = Field(7.0, ge=0)
    # Crash tests only: pause inside the frame transaction so a test can kill the worker there.
    debug_pause_s: float = 0.0
    # Staff web app. The session secret signs the login cookie; when unset, one is generated once and kept
    # in data_dir/session_secret (mode 0600), so restarts and several processes on one machine share it.
    session_secret: SecretStr | None = None
    session_max_age_s: int = Field(8 * 3600, ge=60)
    # The cookie's Secure flag: None (default) on unless served over plain HTTP on loopback (127.0.0.1,
    # ::1, localhost); true always; false never (plain HTTP on a trusted network only).
    session_https_only: bool | None = None
    # Staff logins (web form and HTTP Basic): this many failures for one user name within the window
    # lock that name for the rest of the window.
    login_max_failures: int = Field(10, ge=1)
    login_window_s: int = Field(900, ge=1)
    # Map background; "" shows the map without tiles (sites, areas and the list still work).
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>'
    # The sites list's map draws the vector tiles (/tiles/sites) instead of one GeoJSON of all filtered
    # sites when the filter selects more sites than this (the GeoJSON map stops at 5,000 sites).
    map_tiles_above: int = Field(5000, ge=0)
    # The streets page's map draws the section tiles (/tiles/sections, from zoom 12, with the page's
    # filters) instead of one GeoJSON of all filtered sections when the filter selects more than this.
    map_section_tiles_above: int = Field(5000, ge=0)
    default_locale: str = "de"
    display_timezone: str = "Europe/Berlin"

    # Privacy (GDPR): persons and vehicles are blurred before an image is stored; everything above
    # this fraction of the image height too; None (default): above each vehicle's horizon, derived from
    # its camera pitch and field of view, plus privacy_horizon_margin of the height. Vehicles can override.
    privacy_horizon: float | None = Field(None, ge=0, le=1)
    privacy_horizon_margin: float = Field(0.05, ge=0, le=1)
    privacy_margin: float = Field(0.15, ge=0, le=1)
    # None: the operating point of the privacy model in use (int8 0.08, fp32 0.09), chosen on the audit and on
    # the damage the blur hides from reviewers (weights/PRIVACY_MODEL.md, "Operating point").
    privacy_min_confidence: float | None = Field(None, ge=0, le=1)
    # Input size (px) of the privacy model's second, coarse pass whose boxes are added to the first's: it
    # finds near, large and edge-cut people and vehicles the 640 px pass misses (weights/PRIVACY_MODEL.md,
    # "Views"; 3-4 ms more per 1280x720 frame). 0: one pass only.
    privacy_coarse_pass: int = Field(320, ge=0, le=4096)
    # Its threshold, never below privacy_min_confidence (its extra boxes cost the most damage on stored copies).
    privacy_coarse_min_confidence: float = Field(0.15, ge=0, le=1)
    # Which shipped privacy model blurs (weights/PRIVACY_MODEL.md): int8 (default) is 1.4x as fast as fp32.
    privacy_precision: Literal["fp32", "int8"] = "int8"
    # Anonymized images older than this (by capture time) are deleted; sites, observations and
    # decisions stay. 0 keeps images forever.
    retention_days: int = Field(365, ge=0)
    # Open311 citizen photos (POST requests with a `media` file, service/api/open311.py): at most this many
    # bytes (JPEG or PNG; max_pixels applies too), anonymized like vehicle photos before anything is stored;
    # a phone's tilt is unknown, so no horizon is derived: this fraction of the height from the top is
    # blurred as a whole (0: persons and vehicles only).
    open311_media_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    open311_media_horizon: float = Field(0.35, ge=0, le=1)
    # For the transparency record (AI register, record of processing activities).
    controller: str = "Stadt Musterstadt, Tiefbauamt"
    contact: str = "strassen@musterstadt.example"
    data_protection_contact: str = "datenschutz@musterstadt.example"
    legal_basis: str = (
        "Art. 6(1)(e) GDPR with the municipality's road maintenance duty (Straßenbaulast, state road law)"
    )

    # Road network (`python -m service roads import FILE`, service/domain/roads.py): drivable OSM highway
    # classes (comma-separated), the longest section, the largest file accepted, the importance mapping.
    road_highway_classes: str = (
        "motorway,motorway_link,trunk,trunk_link,primary,primary_link,secondary,secondary_link,"
        "tertiary,tertiary_link,unclassified,residential,living_street,service"
    )
    road_max_section_m: float = Field(50.0, ge=1.0)
    road_max_file_mb: int = Field(2048, ge=1)
    road_importance_version: str = "osm-highway-1"
    # What a photo shows clearly ahead of the camera (its footprint, for coverage).
    footprint_clear_range_m: float = Field(20.0, gt=0)
    # Capture quality (service/domain/quality.py): calibrated by bench/quality.py on RDD2022 and Roboflow
    # photos (1 % false rejects; blur, darkness, overexposure, covered lens each caught in > 90 %).
    quality_blur_min: float = Field(0.085, ge=0)  # fine detail / contrast of the road area
    quality_dark_max_mean: float = Field(50.0, ge=0, le=255)  # mean grey level
    quality_bright_min_share: float = Field(0.30, ge=0, le=1)  # share of pixels at 250..255
    quality_flat_min_share: float = Field(0.60, ge=0, le=1)  # share of textureless 16x16 blocks
    # Coverage: passes are counted per period of this many days (182: half a year).
    coverage_period_days: int = Field(182, ge=1)

    # Label Studio (corrections of the model's boxes): `python -m service labelstudio push|pull`.
    # scripts/labelstudio.sh starts a local one and prints these (`scripts/labelstudio.sh env`).
    labelstudio_url: str | None = None
    labelstudio_token: SecretStr | None = None
    labelstudio_project: str = "Roadwatch corrections"
    # The folder Label Studio serves local files from (its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): it must
    # contain image_dir and nothing that is not anonymized (originals, session_secret, corrections are
    # refused: service/labelstudio/client.py). None: image_dir itself.
    labelstudio_document_root: Path | None = None
    # Where the anonymized images live (None: data_dir/images); elsewhere when Label Studio's root is set.
    image_root: Path | None = None
    # Share of corrected photos held out for evaluation (never trained on), chosen by their sha256.
    labelstudio_holdout_percent: int = Field(20, ge=1, le=90)
    # Webhook: Label Studio sends this in the X-Roadwatch-Webhook-Secret header (None: webhook off), to
    # webhook_base_url + /api/v1/labelstudio/webhook (the service as Label Studio reaches it).
    labelstudio_webhook_secret: SecretStr | None = None
    labelstudio_webhook_base_url: str | None = None

    @property
    def upload_body_bytes(self) -> int:
        """The largest request body of an upload batch (see ``max_batch_bytes``)."""
        if self.max_batch_bytes is not None:
            return self.max_batch_bytes
        framing = 64 * 1024  # part headers and boundaries of a full batch, generously
        images = self.max_images_per_batch * self.max_image_bytes
        return images + self.max_track_bytes + self.max_body_bytes + framing

    @property
    def corrections_dir(self) -> Path:
        """Corrected photos as a YOLO source (data.yaml, train/ and held-out valid/)."""
        return self.data_dir / "corrections"

    @property
    def image_dir(self) -> Path:
        """Anonymized images: the only images anyone sees (and the only folder Label Studio may)."""
        return self.image_root if self.image_root is not None else self.data_dir / "images"

    @property
    def original_dir(self) -> Path:
        """Uploads as received, kept only until their anonymized copy is stored."""
        return self.data_dir / "originals"

    @property
    def psycopg_conninfo(self) -> str:
        """The URL in libpq form, for procrastinate's psycopg connector."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def model_file(self) -> Path:
        """The damage model in use: ``model_path``, else the default of weights/manifest.json (its sha256
        checked). The one answer to "which model is in use" (health, workers, transparency record)."""
        from detector.manifest import default_model_path

        return self.model_path or default_model_path()

    def privacy_model_file(self) -> Path:
        """The privacy model in use (``privacy_precision``): what workers and the Open311 intake load and
        the transparency record names."""
        from service.domain.anonymize import privacy_model_path

        return privacy_model_path(self.privacy_precision)

    def privacy_threshold(self) -> float:
        """The privacy model's confidence threshold: ``privacy_min_confidence``, else its file's own."""
        from service.domain.anonymize import privacy_operating_point

        if self.privacy_min_confidence is not None:
            return self.privacy_min_confidence
        return privacy_operating_point(self.privacy_precision)

    def model_entry(self) -> dict[str, Any]:
        """The manifest entry of the model in use; only its file name and stem when the manifest does
        not list it (or there is no manifest)."""
        from detector.manifest import WEIGHTS_DIR, load_manifest

        wanted = self.model_path.name if self.model_path else None
        try:
            manifest = load_manifest(WEIGHTS_DIR)
        except (OSError, ValueError, KeyError):
            manifest = {"models": [], "default": None}
        for entry in manifest["models"]:
            if (wanted and entry["file"] == wanted) or (not wanted and entry["name"] == manifest["default"]):
                return dict(entry)
        return {"name": self.model_path.stem, "file": wanted} if self.model_path else {}
