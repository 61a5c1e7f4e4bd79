"""Building what a process needs once: the model and its registered version, the worker context."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from detector import Detector, ModelError
from detector.manifest import WEIGHTS_DIR, load_manifest, sha256_file
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.store import ImageStore
from service.db.tables import ModelVersion
from service.domain.anonymize import PrivacyConfig, load_privacy_detector
from service.domain.grades import GradingConfig, load_grading
from service.domain.ranking import DEFAULT_CONFIG, RankingConfig, load_config
from service.settings import Settings
from service.worker.pipeline import WorkerContext


def model_path(settings: Settings) -> Path:
    """The damage model in use: ``ROADWATCH_MODEL_PATH``, else the default of weights/manifest.json.

    The one answer to "which model is in use" (health, worker, transparency record).
    """
    return settings.model_file()


def register_model(sessions: sessionmaker[Session], path: Path) -> int:
    """The model_version row of this model file (created on first use); returns its id."""
    digest = sha256_file(path)
    name, metrics = f"{path.stem}@{digest[:12]}", {}
    try:
        for entry in load_manifest(WEIGHTS_DIR)["models"]:
            if entry.get("sha256") == digest:
                name, metrics = f"{entry['name']}@{digest[:12]}", entry.get("metrics", {})
    except (OSError, ModelError):  # no manifest: a model given by path
        pass
    with transaction(sessions) as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
        if row is None:
            row = ModelVersion(name=name, sha256=digest, file=str(path), metrics=metrics)
            session.add(row)
            session.flush()
        return row.id


def ranking_config(settings: Settings) -> RankingConfig:
    """The ranking configuration in use: ``ROADWATCH_RANKING_CONFIG``, else the built-in default."""
    return load_config(settings.ranking_config) if settings.ranking_config else DEFAULT_CONFIG


def grading_config(settings: Settings) -> GradingConfig:
    """The grading tables in use: ``ROADWATCH_GRADING_CONFIG``, else the shipped grading.yaml."""
    return load_grading(settings.grading_config)


def worker_context(settings: Settings) -> WorkerContext:
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=2))
    path = model_path(settings)
    return WorkerContext(
        settings=settings,
        sessions=sessions,
        store=ImageStore(settings.image_dir),
        detector=Detector.from_path(path, settings.threads),
        model_version_id=register_model(sessions, path),
        ranking=ranking_config(settings),
        originals=ImageStore(settings.original_dir),
        privacy=load_privacy_detector(settings.privacy_model_file(), settings.threads),
        privacy_config=privacy_config(settings),
    )


def privacy_config(settings: Settings) -> PrivacyConfig:
    return PrivacyConfig(
        margin=settings.privacy_margin,
        min_confidence=settings.privacy_threshold(),
        horizon=settings.privacy_horizon,
        horizon_margin=settings.privacy_horizon_margin,
        coarse_pass=settings.privacy_coarse_pass or None,
        coarse_min_confidence=settings.privacy_coarse_min_confidence,
    )
