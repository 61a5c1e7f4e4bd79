"""The transparency record a municipality needs, rendered from the service's own state.

One JSON document serves two registers: the AI transparency register entry (EU AI Act transparency;
purpose, model, data, limits, human oversight) and the record of processing activities (GDPR Art. 30:
controller, purposes, data categories, legal basis, recipients, retention, safeguards).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.tables import Decision, Frame, ModelVersion
from service.domain.ranking import RankingConfig
from service.settings import PROJECT_ROOT, Settings

TRAINING_DATA = [
    {
        "name": "RDD2022, China_MotorBike subset (frames 000000-001299 for training)",
        "authors": "Arya, Maeda, Ghosh, Toshniwal, Sekimoto",
        "license": "CC BY-SA 4.0",
    },
    {
        "name": "Road crack detection and classification v1 (Roboflow Universe, marz-cbyhs)",
        "license": "CC BY 4.0",
        "use": "evaluation of transfer to other roads and cameras",
    },
]


def _model_entry(settings: Settings) -> dict[str, Any]:
    entry = settings.model_entry()
    if "version" not in entry:  # not in the manifest: only its file is known
        return {"file": entry.get("file")}
    return {
        k: entry.get(k)
        for k in ("name", "version", "precision", "sha256", "classes", "metrics", "data_version")
    }


def _privacy_model_name(settings: Settings) -> str:
    """The privacy model file in use, relative to the project (its full path if it lies elsewhere)."""
    path = settings.privacy_model_file()
    return str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)


def _safeguards(settings: Settings) -> dict[str, Any]:
    return {
        "anonymization": (
            "persons and vehicles detected by a dedicated model and pixelated irreversibly with a margin; the "
            "image area above the horizon blurred; the uploaded original deleted once the anonymized copy is "
            "stored; stored copies carry no EXIF"
        ),
        "privacy_model": f"{_privacy_model_name(settings)} (see weights/PRIVACY_MODEL.md)",
        "privacy_min_confidence": settings.privacy_threshold(),
        "privacy_coarse_pass_px": settings.privacy_coarse_pass or None,
        "privacy_coarse_min_confidence": settings.privacy_coarse_min_confidence,
        "horizon_fraction": settings.privacy_horizon,
        "access": "staff accounts with roles viewer, reviewer, admin; vehicle tokens can only upload",
    }


def transparency_record(session: Session, settings: Settings, ranking: RankingConfig) -> dict[str, Any]:
    """The AI-register entry and record of processing activities, from the service's own state."""
    # Long because the record is one literal document (the register's fields in order), not logic.
    frames = session.scalar(select(func.count()).select_from(Frame)) or 0
    decisions = session.scalar(select(func.count()).select_from(Decision)) or 0
    versions = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at)).all()
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "system": "Roadwatch: detection and ranking of road damage in photos from municipal vehicles",
        "controller": settings.controller,
        "contact": settings.contact,
        "data_protection_contact": settings.data_protection_contact,
        "purpose": (
            "Find road damage (cracks, potholes) in photos taken by municipal vehicles, locate it and rank "
            "it so that road maintenance staff can plan repairs. Decision support only."
        ),
        "legal_basis": settings.legal_basis,
        "human_oversight": (
            "The model proposes damage sites; maintenance staff confirm, reject, reclassify, schedule or mark "
            "them repaired. Every decision is recorded with the user, time, reason, previous state and the "
            "model and ranking version it was based on. No repair is ordered by the model."
        ),
        "risk_classification": {
            "ai_act": "not high-risk (Annex III does not cover road-surface inspection); transparency duties apply",
            "reasoning": (
                "The system assesses road surfaces, not people; it makes no decision about natural persons; its "
                "output is a proposal reviewed by staff. Personal data in photos (people, number plates) is "
                "removed before storage and is not used by the damage model's decisions."
            ),
        },
        "model": {
            **_model_entry(settings),
            "card": "weights/MODEL.md",
            "versions_used": [{"name": v.name, "since": v.created_at.isoformat()} for v in versions],
        },
        "training_data": TRAINING_DATA,
        "known_limits": [
            "trained on roads in China; accuracy on German roads is lower until adapted with local photos",
            "no night, rain or snow images measured",
            "estimates no depth; severity comes from class and visible size only",
        ],
        "ranking": {"version": ranking.version, "weights": ranking.weights()},
        "data_categories": [
            "photos of public roads (may show persons, vehicles, number plates: blurred before storage)",
            "time and GPS position of each photo; vehicle identifier",
            "staff user names in decisions",
        ],
        "data_subjects": ["road users and passers-by visible in photos", "municipal staff using the system"],
        "safeguards": _safeguards(settings),
        "retention": {
            "images_days": settings.retention_days or None,
            "rule": (
                "anonymized images, and their copies among the corrections for training (var/corrections), "
                "are deleted after the period; uploads are deleted once processed (a failed frame's upload "
                f"after {settings.failed_upload_keep_days:g} days); sites, observations and decisions are kept"
            ),
            "covers": ["images", "corrections", "uploads of failed frames"],
        },
        "recipients": [
            "municipal road maintenance staff",
            "annotators of the municipality (anonymized images only)",
        ],
        "statistics": {"frames": frames, "decisions": decisions},
    }
