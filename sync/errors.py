"""Sync-specific errors (all :class:`OutpostError`, so the API shape is the same)."""

from __future__ import annotations

from shared_apps.core.errors import Forbidden, InvalidInput, NotFound, OutpostError, PayloadTooLarge


class BatchRejected(InvalidInput):
    """The push batch is rejected as a whole; ``details.errors`` names each bad mutation."""

    code = "batch_rejected"
    message = "The batch was rejected; nothing was written. See details.errors for each invalid mutation."


class BatchTooLarge(PayloadTooLarge):
    code = "batch_too_large"
    message = "The batch has more mutations than allowed."


class ResetRequired(OutpostError):
    status_code = 410
    code = "reset_required"
    message = "The checkpoint is older than the tombstone horizon; discard local data and pull from the start."


class DeviceRevoked(Forbidden):
    code = "device_revoked"
    message = "This device has been revoked."


class CollectionNotFound(NotFound):
    code = "collection_not_found"
    message = "No such collection."


class DeviceNotFound(NotFound):
    code = "device_not_found"
    message = "No such device."


class DocumentNotFound(NotFound):
    code = "document_not_found"
    message = "No such document."


class ConflictNotFound(NotFound):
    code = "conflict_not_found"
    message = "No such conflict."


class ConflictAlreadyResolved(OutpostError):
    status_code = 409
    code = "conflict_already_resolved"
    message = "This conflict is already resolved."


class InvalidCheckpoint(InvalidInput):
    code = "invalid_checkpoint"
    message = "The checkpoint is not one this server issued."
