"""Why a photo was dropped from the dataset (recorded per image so resumed runs skip it too)."""
from __future__ import annotations

__all__ = ["DropError", "UNREADABLE", "NO_FACE", "MULTIPLE_FACES", "LABELER_FAILURE", "DROP_REASONS"]

UNREADABLE = "unreadable"
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
LABELER_FAILURE = "labeler_failure"
DROP_REASONS = (UNREADABLE, NO_FACE, MULTIPLE_FACES, LABELER_FAILURE)


class DropError(ValueError):
    """A photo cannot become a sample; ``reason`` is one of DROP_REASONS, the message says why."""

    def __init__(self, reason: str, message: str):
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        super().__init__(message)
        self.reason = reason
