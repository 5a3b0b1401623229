"""Tutorial progress API: POST progress/, POST progress/mark/, GET progress/.

Writes go through the pipeline like every other event (spool -> Celery ->
tutorial_progress_logs). Read-your-writes: the learner's own reports and marks
that may not be stored yet are kept in their session for a short while
(EVENTLOG_PENDING_SECONDS) and applied on top of what MongoDB holds whenever
their progress is read. The rules are idempotent (minute sets, newest-wins
times), so applying an already stored report again changes nothing: there is
no need to know exactly when the pipeline caught up.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from django_hook import handoff
from django_hook.conf import eventlog_settings, setting_object
from django_hook.offline.sync import package_learner, session_or_package
from django_hook.responses import json_error
from pipeline import progress
from pipeline.events import InvalidEvent, check_client_timestamp, client_time
from pipeline.store import TUTORIAL_PROGRESS_LOGS, process_client

PENDING_KEY = "eventlog_pending_progress"
MAX_PENDING = 40
MAX_BODY = 4096

def _collection() -> Any:
    """tutorial_progress_logs through this process's client."""
    s = eventlog_settings()
    return process_client(s.mongo_url)[s.mongo_db][TUTORIAL_PROGRESS_LOGS]


def course(foss: str, language: str) -> list[dict[str, Any]] | None:
    """The site's course (EVENTLOG_PROGRESS_CATALOGUE), or None if it has no such course."""
    course_of = setting_object("EVENTLOG_PROGRESS_CATALOGUE")
    if course_of is None:
        raise ImproperlyConfigured("EVENTLOG_PROGRESS_CATALOGUE is not set: the progress API needs the site's "
                                   "catalogue")
    return course_of(foss, language)


class BadRequest(Exception):
    pass


def _json_body(request: HttpRequest) -> dict[str, Any]:
    body = request.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise BadRequest("body too large")
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _report_time(data: dict[str, Any], earliest: float | None = None) -> datetime:
    """When the player made the report or mark: its clock ("ts", epoch ms) when plausible,
    never later than now.

    A player keeps what it could not send (offline) and sends it later; the resume position
    and the manual mark follow what was made last, not what happened to arrive last.
    """
    now = time.time()
    if data.get("ts") is None:
        return datetime.fromtimestamp(now, UTC)
    try:
        ts = check_client_timestamp(data["ts"])
    except InvalidEvent as exc:
        raise BadRequest(f"{exc} (the time it was made, in epoch milliseconds)") from None
    # Never later than its arrival: "newest wins" must not let a fast clock beat later reports.
    # ``earliest``: an offline package's download time, the bound of what it may report late.
    return min(client_time(ts, now, earliest), datetime.fromtimestamp(now, UTC))


def _tutorial(data: dict[str, Any]) -> dict[str, Any]:
    """The catalogue entry the request names; BadRequest if there is none."""
    foss, language, title = data.get("foss"), data.get("language"), data.get("tutorial")
    if not all(isinstance(v, str) and v for v in (foss, language, title)):
        raise BadRequest("foss, language and tutorial are required strings")
    for entry in course(foss, language) or ():
        if entry["title"] == title:
            return entry
    raise BadRequest(f"unknown tutorial {title!r} in {foss} ({language})")


# ------------------------------------------------------------ pending overlay


def _author(request: HttpRequest) -> str:
    """Whose progress this request reads or writes: the session's user, or an offline package's learner."""
    if getattr(request, "eventlog_package", None) is not None:
        return request.eventlog_package.learner
    return request.user.get_username()


def _earliest(request: HttpRequest) -> float | None:
    package = getattr(request, "eventlog_package", None)
    return float(package.downloaded) if package is not None else None


def _pending(request: HttpRequest) -> list[dict[str, Any]]:
    if getattr(request, "eventlog_package", None) is not None:
        return getattr(request, "eventlog_pending", [])  # a package has no session: this request's own write
    now = time.time()
    return [p for p in request.session.get(PENDING_KEY, []) if p["until"] > now]


def _remember(request: HttpRequest, kind: str, event: dict[str, Any]) -> None:
    ttl = eventlog_settings().pending_seconds
    pending = _pending(request) + [{"kind": kind, "event": event, "until": time.time() + ttl}]
    request.session[PENDING_KEY] = pending[-MAX_PENDING:]


def _overlay(state: dict[str, Any] | None, pending: list[dict[str, Any]], key: dict[str, str]) -> dict[str, Any] | None:
    for item in pending:
        event = item["event"]
        if progress.progress_key(event["username"], event["foss"], event["language"], event["tutorial"]) != key:
            continue
        apply = progress.apply_report if item["kind"] == "progress.report" else progress.apply_mark
        state = apply(state, event)
    return state


def tutorial_state(request: HttpRequest, foss: str, language: str, title: str) -> dict[str, Any] | None:
    """The learner's progress on one tutorial, their unstored writes included."""
    key = progress.progress_key(_author(request), foss, language, title)
    doc = _collection().find_one(key, {"_id": 0})
    return _overlay(progress.from_doc(doc) if doc else None, _pending(request), key)


def course_state(request: HttpRequest, foss: str, language: str) -> dict[str, Any] | None:
    """Course percent, per-tutorial status and where to continue; None for an unknown course."""
    entries = course(foss, language)
    if entries is None:
        return None
    username = _author(request)
    docs = {d["tutorial"]: progress.from_doc(d)
            for d in _collection().find(progress.course_filter(username, foss, language), {"_id": 0})}
    pending = _pending(request)
    states = []
    for entry in entries:
        key = progress.progress_key(username, foss, language, entry["title"])
        state = _overlay(docs.get(entry["title"]), pending, key)
        if state is not None:
            states.append(state)
    result = progress.course_progress([e["title"] for e in entries], states, foss=foss, language=language)
    urls = {e["title"]: e["url"] for e in entries}
    for row in result["tutorials"]:
        row["url"] = urls[row["tutorial"]]
    nxt = result["continue_with"]
    result["resume_url"] = f"{urls[nxt]}?t={result['resume_position']}" if nxt else None
    return result


# ------------------------------------------------------------ views


def _public(state: dict[str, Any] | None) -> dict[str, Any]:
    summary = progress.summary(state)
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in summary.items()}


def _learner_only(request: HttpRequest) -> JsonResponse | None:
    request.eventlog_skip = True  # API calls are not page visits
    if getattr(request, "eventlog_package", None) is not None:
        if package_learner(request) is None:
            return json_error(401, "this package was downloaded without logging in (or its learner is gone)")
        return None
    if not request.user.is_authenticated:
        return json_error(401, "log in to see and save your progress")
    return None


def _hand_off(request: HttpRequest, kind: str, event: dict[str, Any]) -> JsonResponse | None:
    """Spool the event; a 503 when the spool dropped it (full: the player keeps it and retries)."""
    if not handoff.spool().append({"kind": kind, **event}):
        response = json_error(503, "progress not accepted; retry later")
        response["Retry-After"] = "30"
        return response
    if getattr(request, "eventlog_package", None) is None:
        _remember(request, kind, event)
    else:
        request.eventlog_pending = [{"kind": kind, "event": event, "until": time.time()}]
    return None


@session_or_package
@require_http_methods(["GET", "POST"])
def progress_view(request: HttpRequest) -> HttpResponse:
    refused = _learner_only(request)
    if refused:
        return refused
    if request.method == "GET":
        foss, language = request.GET.get("foss", ""), request.GET.get("language", "")
        result = course_state(request, foss, language)
        if result is None:
            return json_error(400, f"unknown course {foss!r} ({language!r})")
        for row in result["tutorials"]:
            row.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()})
        return JsonResponse(result)
    try:
        data = _json_body(request)
        entry = _tutorial(data)
        event = {
            "username": _author(request),  # never from the payload
            "foss": data["foss"], "language": data["language"], "tutorial": entry["title"],
            "video_length": entry["length"],
            "position": data.get("position"), "minutes": data.get("minutes", []),
            "visit_id": data.get("visit_id"), "report_id": data.get("report_id"),
            "at": _report_time(data, _earliest(request)).isoformat(),
        }
        progress.validate_report(event)
    except (BadRequest, progress.InvalidReport) as exc:
        return json_error(400, str(exc))
    refused = _hand_off(request, "progress.report", event)
    if refused:
        return refused
    return JsonResponse(_public(tutorial_state(request, event["foss"], event["language"], event["tutorial"])))


@session_or_package
@require_http_methods(["POST"])
def mark_view(request: HttpRequest) -> HttpResponse:
    refused = _learner_only(request)
    if refused:
        return refused
    try:
        data = _json_body(request)
        entry = _tutorial(data)
        if not isinstance(data.get("completed"), bool):
            raise BadRequest("completed must be true or false")
        event = {
            "username": _author(request),
            "foss": data["foss"], "language": data["language"], "tutorial": entry["title"],
            "completed": data["completed"], "at": _report_time(data, _earliest(request)).isoformat(),
        }
        progress.validate_mark(event)
    except (BadRequest, progress.InvalidReport) as exc:
        return json_error(400, str(exc))
    refused = _hand_off(request, "progress.mark", event)
    if refused:
        return refused
    return JsonResponse(_public(tutorial_state(request, event["foss"], event["language"], event["tutorial"])))
