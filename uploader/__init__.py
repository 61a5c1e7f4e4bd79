"""Roadwatch uploader: sends a vehicle's dashcam photos to the service, each exactly once.

``python -m uploader send DIR`` sends what is in a folder and exits; ``python -m uploader watch DIR``
keeps polling it. A local SQLite journal (``DIR/.roadwatch-journal.sqlite``) remembers what the server
acknowledged; before sending bytes the uploader asks the server which sha256 hashes it lacks, so a crash,
reboot or lost connection never leads to a photo being stored twice. Runs without the service's heavy
dependencies: it needs httpx, Pillow, gpxpy and pynmea2 (``pip install 'roadwatch[uploader]'``).

Modules: ``photos`` (find, hash, locate and sample photos), ``journal`` (the client's state),
``api`` (HTTP with retries), ``sync`` (one send cycle and the watch loop), ``cli``.

Errors (all derive from ``UploaderError``)::

    UploaderError
    +-- UsageError          bad arguments or configuration (CLI exit 2)
    +-- JournalError        the journal cannot be opened, or another uploader holds it
    +-- ServerError         the server answered with an error
    |   +-- AuthError           401/403: wrong or revoked token; fatal, never retried
    |   +-- BatchTooLarge       413: the batch exceeds the server's limit; sent again in halves
    |   +-- RequestRejected     another 4xx for the whole batch; halved until the one bad photo fails
    +-- TransientError      network error, timeout, 5xx, 429: retried with backoff (``retry_after``)
        +-- Interrupted         a stop was requested while waiting to retry
"""

from uploader.errors import (
    AuthError,
    BatchTooLarge,
    Interrupted,
    JournalError,
    RequestRejected,
    ServerError,
    TransientError,
    UploaderError,
    UsageError,
)

__all__ = [
    "AuthError",
    "BatchTooLarge",
    "Interrupted",
    "JournalError",
    "RequestRejected",
    "ServerError",
    "TransientError",
    "UploaderError",
    "UsageError",
]
