"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)

OK = "ok"
FAILED = "error"


async def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers; touches neither the database nor the cache."""
    return JsonResponse({"status": OK})


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        # Only the exception's class: its message may name hosts or users.
        logger.warning("readiness: database check failed (%s)", type(exc).__name__)
        return FAILED
    return OK


def _cache() -> str:
    key, token = f"readyz:{secrets.token_hex(8)}", secrets.token_hex(8)
    try:
        cache.set(key, token, timeout=10)
        round_trip = cache.get(key)
        cache.delete(key)
    except Exception as exc:
        logger.warning("readiness: cache check failed (%s)", type(exc).__name__)
        return FAILED
    if round_trip != token:
        logger.warning("readiness: cache check failed (value did not round-trip)")
        return FAILED
    return OK


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers SELECT 1 and the cache round-trips a value, else 503."""
    checks = {"database": _database(), "cache": _cache()}
    ready = all(result == OK for result in checks.values())
    return JsonResponse({"status": OK if ready else FAILED, **checks}, status=200 if ready else 503)
