"""The downloadable package of one course in one language: a zip streamed as it is built.

Layout (one top folder, so unzipping makes one directory):

    <foss>-<language>/index.html              the course: tutorials, what was watched, sync state
    <foss>-<language>/tutorials/<slug>.html   one page per tutorial with its video
    <foss>-<language>/videos/<slug>.<ext>     the video files, stored (they are compressed already)
    <foss>-<language>/eventlog/package.js     the package's settings and its signed sync token
    <foss>-<language>/eventlog/offline.js     the offline tracker (django_hook/static/eventlog/)
    <foss>-<language>/README.txt

Every link is relative and every script is a classic script, so the pages, navigation and
video playback work opened from file:// with no network at all.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from django.http import HttpRequest, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import reverse

from django_hook.conf import eventlog_settings
from django_hook.offline.token import PackageToken, issue
from django_hook.request_info import username
from pipeline.events import new_event_id
from pipeline.sites import site_name

CHUNK = 256 * 1024


@dataclass(frozen=True)
class OfflineTutorial:
    """One tutorial of a package, as the site describes it."""

    title: str
    slug: str  # file name of its page and video (no slashes)
    length: int  # video length in seconds (the 80 % rule needs it offline too)
    video: Path  # the video file to put in the package
    path: str  # URL path of the tutorial's page on the site: offline views are recorded under it


class _Sink(io.RawIOBase):
    """A write-only, unseekable file: zipfile then writes data descriptors, and the bytes
    written so far can be taken and sent while the rest is still being built."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _text(zf: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name, time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, text.encode("utf-8"))


def _stream(files: list[tuple[str, str | Path]]) -> Iterator[bytes]:
    """The zip of ``files`` ((name, text) or (name, Path)), in chunks of about CHUNK bytes."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w") as zf:
        for name, content in files:
            if isinstance(content, str):
                _text(zf, name, content)
                yield sink.take()
                continue
            info = zipfile.ZipInfo.from_file(content, name)
            info.compress_type = zipfile.ZIP_STORED  # video: deflate would only cost CPU
            with content.open("rb") as source, zf.open(info, "w") as target:
                while block := source.read(CHUNK):
                    target.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def _tracker_source() -> str:
    return (resources.files("django_hook") / "static" / "eventlog" / "offline.js").read_text(encoding="utf-8")


def _config(request: HttpRequest, token: PackageToken, course_title: str, index_path: str,
            tutorials: Sequence[OfflineTutorial]) -> dict:
    s = eventlog_settings()
    base = (s.offline_site_url or request.build_absolute_uri("/")).rstrip("/")
    return {
        "site_url": base,
        "collect": base + reverse("eventlog:collect"),
        "progress": base + reverse("eventlog:progress"),
        "mark": base + reverse("eventlog:progress-mark"),
        "token": issue(token),
        "package_id": token.package_id,
        "issued": token.issued,
        "learner": token.learner,
        "foss": token.foss,
        "language": token.language,
        "title": course_title,
        "index_path": index_path,
        "queue_max": s.offline_queue_max,
        "dnt": s.respect_dnt,
        "tutorials": [{"title": t.title, "slug": t.slug, "length": t.length, "path": t.path} for t in tutorials],
    }


def package_files(request: HttpRequest, foss: str, language: str, course_title: str, index_path: str,
                  tutorials: Sequence[OfflineTutorial]) -> list[tuple[str, str | Path]]:
    """What goes into the package, in order: (name in the zip, text or file)."""
    now = int(time.time())
    learner = username(request)
    token = PackageToken(
        package_id=new_event_id(), foss=foss, language=language,
        learner=learner if request.user.is_authenticated else None,
        site=site_name(request.get_host(), eventlog_settings().sites, request.scheme),
        downloaded=now, issued=now,
    )
    config = _config(request, token, course_title, index_path, tutorials)
    top = f"{foss}-{language}/".replace(" ", "-")
    context = {"config": config, "tutorials": tutorials, "course_title": course_title, "language": language}
    files: list[tuple[str, str | Path]] = [
        (top + "index.html", render_to_string("eventlog/offline/index.html", context)),
        (top + "eventlog/package.js",
         "window.eventlogPackage = " + json.dumps(config).replace("<", "\\u003c") + ";\n"),
        (top + "eventlog/offline.js", _tracker_source()),
        (top + "README.txt", render_to_string("eventlog/offline/README.txt", context)),
    ]
    for number, tutorial in enumerate(tutorials):
        video = f"{tutorial.slug}{tutorial.video.suffix}"
        page = {**context, "tutorial": tutorial, "video": video,
                "previous": tutorials[number - 1] if number else None,
                "next": tutorials[number + 1] if number + 1 < len(tutorials) else None}
        files.append((f"{top}tutorials/{tutorial.slug}.html", render_to_string("eventlog/offline/tutorial.html", page)))
    files.extend((f"{top}videos/{t.slug}{t.video.suffix}", t.video) for t in tutorials)
    return files


def package_response(request: HttpRequest, foss: str, language: str, course_title: str, index_path: str,
                     tutorials: Sequence[OfflineTutorial]) -> StreamingHttpResponse:
    """The package as a streamed zip download (built while it is sent: no temporary file)."""
    files = package_files(request, foss, language, course_title, index_path, tutorials)
    response = StreamingHttpResponse(_stream(files), content_type="application/zip")
    name = f"{foss}-{language}-offline.zip".replace(" ", "-")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"  # it holds the learner's own sync token
    return response
