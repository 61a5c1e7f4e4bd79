"""The Label Studio server: connection, project (labels of the model's classes), Local Files storage over
the image store, webhook; and the split of a photo into train or held-out ``valid``."""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from service.domain.classes import CLASSES
from service.settings import Settings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)

FROM_NAME, TO_NAME = "label", "image"
SPLITS = ("train", "valid")
# pg_advisory_xact_lock key: one push at a time, so two pushes never send the same frame.
PUSH_LOCK = 0x4C53_5055  # "LSPU"
T = TypeVar("T")


class LabelStudioError(RuntimeError):
    """Label Studio is unreachable, refused us, or its project does not fit: a message for people."""


def label_config(classes: tuple[str, ...] = CLASSES) -> str:
    """RectangleLabels over the image; ``category`` keeps class ids in Label Studio's YOLO export."""
    labels = "\n    ".join(f'<Label value="{name}" category="{i}"/>' for i, name in enumerate(classes))
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n    {labels}\n  </RectangleLabels>\n'
        "</View>"
    )


def config_labels(config: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Label values of a project's configuration, and (name, toName) of its RectangleLabels tags."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise LabelStudioError(f"the project's label configuration is not valid XML: {exc}") from exc
    labels: list[str] = []
    tags: list[tuple[str, str]] = []
    for tag in root.iter("RectangleLabels"):
        tags.append((tag.get("name", ""), tag.get("toName", "")))
        labels.extend(label.get("value", "") for label in tag.iter("Label"))
    return labels, tags


def holdout_split(sha256: str, percent: int) -> str:
    """``valid`` (held out, never trained on) for about ``percent`` % of photos, fixed by the sha256."""
    digest = hashlib.sha256(b"roadwatch-holdout\0" + sha256.encode()).digest()
    return "valid" if int.from_bytes(digest[:4], "big") % 100 < percent else "train"


# --- the connection -------------------------------------------------------------------------------


@dataclass
class Connection:
    client: LabelStudio
    url: str

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call; turn transport and HTTP errors into a LabelStudioError people can act on."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LabelStudioError(
                f"Label Studio is not reachable at {self.url} ({what}): {exc}. Is it running? "
                "(`make labelstudio-start`, then `scripts/labelstudio.sh env`)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise LabelStudioError(f"Label Studio at {self.url} did not answer in time ({what})") from exc
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"talking to Label Studio at {self.url} failed ({what}): {exc}") from exc
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the API token ({exc.status_code}, {what}): check "
                    "ROADWATCH_LABELSTUDIO_TOKEN (the user's legacy API token; the server needs "
                    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)"
                ) from exc
            raise LabelStudioError(
                f"Label Studio at {self.url} refused {what}: HTTP {exc.status_code}: {_short(exc.body)}"
            ) from exc


def _short(body: Any, limit: int = 500) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."


def connect(settings: Settings) -> Connection:
    """A client for ``settings.labelstudio_url`` whose token has been checked (``whoami``)."""
    if not settings.labelstudio_url:
        raise LabelStudioError("ROADWATCH_LABELSTUDIO_URL is not set (see `scripts/labelstudio.sh env`)")
    if settings.labelstudio_token is None or not settings.labelstudio_token.get_secret_value():
        raise LabelStudioError("ROADWATCH_LABELSTUDIO_TOKEN is not set (see `scripts/labelstudio.sh env`)")
    from label_studio_sdk import LabelStudio

    url = settings.labelstudio_url.rstrip("/")
    client = LabelStudio(  # type: ignore[no-untyped-call]
        base_url=url, api_key=settings.labelstudio_token.get_secret_value(), timeout=60, max_retries=0
    )
    conn = Connection(client, url)
    conn.call("checking the token", client.users.whoami)
    return conn


def find_project(conn: Connection, title: str) -> Any | None:
    listed: list[Any] = conn.call("listing projects", lambda: list(conn.client.projects.list(title=title)))
    matches = [p for p in listed if p.title == title]
    if len(matches) > 1:
        raise LabelStudioError(
            f"Label Studio has {len(matches)} projects titled {title!r} (ids "
            f"{', '.join(str(p.id) for p in matches)}): rename all but one, or set ROADWATCH_LABELSTUDIO_PROJECT"
        )
    if not matches:
        return None
    return conn.call("reading the project", conn.client.projects.get, matches[0].id)


def check_project(project: Any, classes: tuple[str, ...] = CLASSES) -> bool:
    """Raise when the project labels another class set; True when its configuration is exactly ours."""
    config = project.label_config or ""
    labels, tags = config_labels(config)
    if sorted(labels) != sorted(classes):
        raise LabelStudioError(
            f"the Label Studio project {project.title!r} (id {project.id}) labels {labels or 'nothing'} with "
            f"rectangles, but the model's classes are {list(classes)}: set ROADWATCH_LABELSTUDIO_PROJECT to "
            "another title (a new project is created) or give that project these labels"
        )
    return (FROM_NAME, TO_NAME) in tags and config.strip() == label_config(classes).strip()


def ensure_project(conn: Connection, settings: Settings, create: bool = True) -> Any:
    """The project titled ``settings.labelstudio_project``: created, or checked and updated to our config."""
    title = settings.labelstudio_project
    project = find_project(conn, title)
    if project is None:
        if not create:
            raise LabelStudioError(
                f"Label Studio has no project titled {title!r}: `python -m service labelstudio push` creates it"
            )
        project = conn.call(
            "creating the project",
            conn.client.projects.create,
            title=title,
            description="Roadwatch: correct the model's boxes (D00 longitudinal crack, D10 transverse "
            "crack, D20 alligator crack, D40 pothole). Delete false boxes, add missed damage.",
            label_config=label_config(),
        )
        log.info("created Label Studio project %r (id %s)", title, project.id)
        return conn.call("reading the project", conn.client.projects.get, project.id)
    if not check_project(project):
        # Same labels, other tags or attributes (e.g. no category): make it ours. Label Studio refuses
        # changes that would orphan existing annotations, which then surfaces as a clear error.
        conn.call(
            "updating the label configuration",
            conn.client.projects.update,
            project.id,
            label_config=label_config(),
        )
        project = conn.call("reading the project", conn.client.projects.get, project.id)
    return project


def document_root(settings: Settings) -> Path:
    """Label Studio's document root (default: the anonymized images themselves), checked: it must not
    contain originals, the session secret or anything else of the data folder but anonymized images."""
    root = (settings.labelstudio_document_root or settings.image_dir).resolve()
    private = {
        "the uploads before anonymization": settings.original_dir,
        "the session secret": settings.data_dir / "session_secret",
        "the corrections (training copies)": settings.corrections_dir,
        "the data folder": settings.data_dir,
    }
    for what, path in private.items():
        if path.resolve().is_relative_to(root):
            raise LabelStudioError(
                f"Label Studio's document root {root} would expose {what} ({path}): give it a folder that "
                "holds only the anonymized images (by default the image folder itself, "
                f"{settings.image_dir}; ROADWATCH_IMAGE_ROOT moves that folder)"
            )
    return root


def local_file_url(settings: Settings, path: Path) -> str:
    """The URL Label Studio serves ``path`` under (Local Files, relative to its document root)."""
    root = document_root(settings)
    try:
        relative = path.resolve().relative_to(root)
    except ValueError as exc:
        raise LabelStudioError(
            f"the image folder {settings.image_dir} is not inside Label Studio's document root {root}: start "
            "Label Studio with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a parent of it and set "
            "ROADWATCH_LABELSTUDIO_DOCUMENT_ROOT to the same folder"
        ) from exc
    return "/data/local-files/?d=" + quote(relative.as_posix(), safe="/")


def ensure_storage(conn: Connection, settings: Settings, project_id: int) -> None:
    """A Local Files storage over the image store, which lets the project's tasks read those files."""
    path = str(settings.image_dir.resolve())
    storages = conn.call("listing storages", conn.client.import_storage.local.list, project=project_id)
    if any(getattr(s, "path", None) == path for s in storages):
        return
    conn.call(
        "creating the Local Files storage (is LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT a parent of "
        f"{path}, and LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true?)",
        conn.client.import_storage.local.create,
        project=project_id,
        path=path,
        title="Roadwatch images",
        description="Anonymized frames of the Roadwatch image store (tasks are sent by the service; never sync)",
        use_blob_urls=False,
    )


# --- choosing frames ------------------------------------------------------------------------------


def ensure_webhook(conn: Connection, settings: Settings, project_id: int) -> None:
    """When configured, Label Studio calls the service on every saved annotation (no timer needed)."""
    if settings.labelstudio_webhook_secret is None or not settings.labelstudio_webhook_base_url:
        return
    url = settings.labelstudio_webhook_base_url.rstrip("/") + "/api/v1/labelstudio/webhook"
    hooks = conn.call("listing webhooks", conn.client.webhooks.list, project=str(project_id))
    if any(getattr(h, "url", None) == url for h in hooks):
        return
    conn.call(
        "creating the webhook",
        conn.client.webhooks.create,
        url=url,
        project=project_id,
        send_payload=True,
        send_for_all_actions=False,
        actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED"],
        headers={"X-Roadwatch-Webhook-Secret": settings.labelstudio_webhook_secret.get_secret_value()},
    )


# --- pull -----------------------------------------------------------------------------------------


@contextmanager
def cli_errors() -> Iterator[None]:
    """For the CLI: a LabelStudioError becomes one line on stderr and exit status 1."""
    try:
        yield
    except LabelStudioError as exc:
        raise SystemExit(f"error: {exc}") from None
