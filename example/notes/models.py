"""The example's data: notes (served over GraphQL) and uploaded attachments."""

from __future__ import annotations

import hashlib

from django.db import models

CHUNK_SIZE = 64 * 1024


class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return self.title


class Attachment(models.Model):
    """A file kept under MEDIA_ROOT/attachments/ (the media volume)."""

    name = models.CharField(max_length=255, help_text="The file name the client sent.")
    file = models.FileField(upload_to="attachments/", max_length=255)
    uploaded_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-uploaded_at", "-id")

    def __str__(self) -> str:
        return self.name

    def sha256(self) -> str | None:
        """SHA-256 of the stored bytes, or None when the file is missing from storage."""
        storage, path = self.file.storage, self.file.name
        if not path or not storage.exists(path):
            return None
        digest = hashlib.sha256()
        with storage.open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
                digest.update(chunk)
        return digest.hexdigest()
