from django.db import models

from common.ids import uuid7


class OutboxEvent(models.Model):
    """An event written in the same transaction as the state change it describes.
    Ids are UUIDv7, so id order is creation order; the relay publishes in that order."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    aggregate_type = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=80, db_index=True)
    payload = models.JSONField(default=dict)
    # Where the event came from: {"request_id": ...} of the request or task that wrote it.
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["aggregate_type", "aggregate_id"], name="outbox_aggregate_idx"),
            models.Index(fields=["id"], condition=models.Q(published_at__isnull=True), name="outbox_unpublished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}"
