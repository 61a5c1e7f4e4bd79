"""The service's errors: what went wrong, in words for people. ``service.app`` maps them to HTTP once
(JSON for the API, a page for the web app); nothing below the routes raises ``HTTPException``.

```
ServiceError
 ├── NotFound        404: no such site, frame, work order, user, vehicle
 │    └── Gone       410: it existed, but is deleted (an image after the retention period)
 ├── Conflict        409: the current state does not allow it (a decision on a repaired site)
 ├── InvalidInput    422: the request itself is wrong (a bad id, bbox, status, class) (also a ValueError)
 └── Forbidden       403: this account may not do it
```
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the service's expected errors."""


class NotFound(ServiceError):
    """The thing asked for does not exist."""


class Gone(NotFound):
    """The thing existed but was deleted (for example by retention)."""


class Conflict(ServiceError):
    """The current state does not allow the change."""


class InvalidInput(ServiceError, ValueError):
    """The request is malformed or out of range."""


class Forbidden(ServiceError):
    """The account lacks the permission."""


__all__ = ["Conflict", "Forbidden", "Gone", "InvalidInput", "NotFound", "ServiceError"]
