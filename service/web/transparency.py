"""The transparency page: which model is in use (manifest and model card), what it can and cannot do,
how sites are ranked, and that staff make every decision."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from markupsafe import Markup, escape
from sqlalchemy import select

from detector.manifest import WEIGHTS_DIR
from service.access.deps import SessionDep, ViewerDep
from service.db.tables import ModelVersion
from service.db.transparency import transparency_record
from service.domain.classes import CLASSES
from service.web.render import WebRoute, page
from service.worker.context import ranking_config

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _inline(text: str) -> str:
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    return re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", html)


def markdown(text: str, top: int = 2) -> Markup:
    """The small Markdown subset of model cards (headings, paragraphs, lists, code, emphasis), escaped.

    A list item may continue on indented lines; it stays one ``<li>``.
    """
    out: list[str] = []
    para: list[str] = []
    item: list[str] = []
    in_list = False

    def end_item() -> None:
        if item:
            out.append("<li>" + _inline(" ".join(item)) + "</li>")
            item.clear()

    def close() -> None:
        nonlocal in_list
        end_item()
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for line in text.splitlines():
        stripped = line.strip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        if heading:
            close()
            level = min(len(heading.group(1)) + top - 1, 6)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"^[-*]\s+", stripped) and not line[:1].isspace():
            if para:
                close()
            end_item()
            if not in_list:
                out.append("<ul>")
                in_list = True
            item.append(re.sub(r"^[-*]\s+", "", stripped))
        elif not stripped:
            close()
        elif in_list and line[:1].isspace():
            item.append(stripped)  # the current item goes on
        else:
            if in_list:
                close()
            para.append(stripped)
    close()
    return Markup("\n".join(out))


def model_in_use(request: Request) -> dict[str, Any]:
    """The manifest entry of the configured model (or just its file name) and its model card."""
    settings = request.app.state.settings
    entry = settings.model_entry()
    card_dir: Path = settings.model_path.parent if settings.model_path else WEIGHTS_DIR
    card_path = card_dir / "MODEL.md"
    card = markdown(card_path.read_text(encoding="utf-8"), top=3) if card_path.is_file() else None
    return {"entry": entry, "card": card}


@router.get("/about")
def about(request: Request, session: SessionDep, user: ViewerDep) -> Response:
    versions = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc())).all()
    config = ranking_config(request.app.state.settings)
    record = transparency_record(session, request.app.state.settings, config)
    return page(
        request,
        "about.html",
        user,
        classes=CLASSES,
        versions=versions,
        ranking=config,
        weights=config.weights(),
        record=record,
        **model_in_use(request),
    )
