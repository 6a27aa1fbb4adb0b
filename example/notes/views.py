"""Plain Django views for file uploads: POST /upload and GET /attachments."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from notes.models import Attachment

UPLOAD_FIELD = "file"


def describe(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "url": attachment.file.url,
        "sha256": attachment.sha256(),
        "uploaded_at": attachment.uploaded_at.isoformat(),
    }


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    """Store the multipart field "file" under MEDIA_ROOT/attachments/."""
    uploaded = request.FILES.get(UPLOAD_FIELD)
    if uploaded is None:
        return JsonResponse({"error": f'send the file as the multipart/form-data field "{UPLOAD_FIELD}"'}, status=400)
    name = PurePath(uploaded.name or "upload").name[:255] or "upload"
    attachment = Attachment(name=name)
    attachment.file.save(name, uploaded, save=True)
    return JsonResponse(describe(attachment), status=201)


@require_safe
def attachments(request: HttpRequest) -> JsonResponse:
    """Every attachment, newest first, with the SHA-256 of its stored bytes."""
    return JsonResponse([describe(attachment) for attachment in Attachment.objects.all()], safe=False)
