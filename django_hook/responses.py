"""JSON answers of eventlog's endpoints: one shape for errors, dates and datetimes as ISO text."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import JsonResponse


def json_response(payload: dict[str, Any]) -> JsonResponse:
    """``payload`` as JSON (figures hold dates and datetimes; text stays unescaped UTF-8)."""
    return JsonResponse(payload, encoder=DjangoJSONEncoder, json_dumps_params={"ensure_ascii": False})


def json_error(status: int, message: str) -> JsonResponse:
    """``{"error": message}`` with the status, as every eventlog endpoint answers an error."""
    return JsonResponse({"error": message}, status=status)
