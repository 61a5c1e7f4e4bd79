"""Languages of the staff web app: message catalogs (locales/<lang>.json) and Babel formatting.

Templates only name messages (``_("nav.sites")``); the words live in the catalogs. The locale comes from
``?lang=`` (which also sets the ``lang`` cookie), then the cookie, then the configured default (German).
Dates are shown in the configured time zone (Europe/Berlin); numbers and units follow the locale.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from babel.units import format_unit
from fastapi import Request

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("de", "en")
LANGUAGE_NAMES = {"de": "Deutsch", "en": "English"}
COOKIE = "lang"


@cache
def catalog(lang: str) -> dict[str, str]:
    words: dict[str, str] = json.loads((LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return words


def choose_language(request: Request, default: str = "de") -> str:
    for candidate in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return default if default in LANGUAGES else LANGUAGES[0]


class Translator:
    """Messages and number/date formats of one language, handed to the templates."""

    def __init__(self, lang: str, timezone: str = "Europe/Berlin") -> None:
        self.lang = lang
        self.tz = ZoneInfo(timezone)
        self.messages = catalog(lang)

    def gettext(self, key: str, **values: Any) -> str:
        text = self.messages.get(key)
        if text is None:  # a missing message shows its key (a test checks the catalogs are complete)
            text = catalog("en").get(key, key)
        return text.format(**values) if values else text

    __call__ = gettext

    def datetime(self, value: dt.datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return "–"
        return format_datetime(value, fmt, tzinfo=self.tz, locale=self.lang)

    def date(self, value: dt.date | dt.datetime | None, fmt: str = "medium") -> str:
        if value is None:
            return "–"
        if isinstance(value, dt.datetime):
            value = value.astimezone(self.tz).date()
        return format_date(value, fmt, locale=self.lang)

    def number(self, value: float | int | None, digits: int = 1) -> str:
        if value is None:
            return "–"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, pattern, locale=self.lang)

    def percent(self, value: float | None) -> str:
        return "–" if value is None else format_percent(value, locale=self.lang)

    def metres(self, value: float | None) -> str:
        if value is None:
            return "–"
        return format_unit(value, "length-meter", length="short", format="#,##0.0#", locale=self.lang)

    def js_messages(self, prefix: str = "js.") -> str:
        """The messages the page scripts need, as JSON for a data attribute."""
        return json.dumps({k[len(prefix) :]: v for k, v in self.messages.items() if k.startswith(prefix)})
