import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from demo.catalogue import CATALOGUE, VIDEO_DIR, find_tutorial, slug, video_length
from django_hook.offline.package import OfflineTutorial, package_response
from django_hook.progress_views import course_state, tutorial_state
from pipeline.progress import summary

# ?t=<seconds> on a watch page: at most six ASCII digits, then bounded by the video's length.
RESUME_PARAM = re.compile(r"[0-9]{1,6}")


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/home.html", {"catalogue": CATALOGUE})


def watch(request: HttpRequest, foss: str, tutorial: str, language: str) -> HttpResponse:
    title = find_tutorial(foss, tutorial, language)
    if title is None:
        raise Http404("No such tutorial")
    status = None
    resume = 0
    if request.user.is_authenticated:
        status = summary(tutorial_state(request, foss, language, title))
        resume = status["resume_position"]
    start = request.GET.get("t", "")
    if RESUME_PARAM.fullmatch(start):  # ASCII digits only: str.isdigit() takes "²", which int() refuses
        resume = min(int(start), video_length(foss, title))
    return render(request, "demo/watch.html", {
        "foss": foss, "title": title, "language": language, "status": status, "resume": resume,
        "video": f"demo/videos/{foss}-{slug(title)}.webm", "length": video_length(foss, title),
        "homepage": CATALOGUE[foss]["homepage"],
    })


def tutorial_search(request: HttpRequest) -> HttpResponse:
    foss = request.GET.get("foss", "BASH")
    language = request.GET.get("language", "English")
    course = CATALOGUE.get(foss)
    tutorials = [(t, slug(t)) for t in course["tutorials"]] if course else []
    progress = None
    if request.user.is_authenticated and course and language in course["languages"]:
        progress = course_state(request, foss, language)
    return render(request, "demo/search.html", {
        "foss": foss, "language": language, "tutorials": tutorials, "catalogue": CATALOGUE, "progress": progress,
    })


def cdcontent(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/cdcontent.html", {"catalogue": CATALOGUE})


def cdcontent_download(request: HttpRequest, foss: str, language: str) -> HttpResponse:
    """One course in one language as an offline package (zip, streamed): docs/offline.md."""
    course = CATALOGUE.get(foss)
    if course is None or language not in course["languages"]:
        raise Http404("No such course")
    tutorials = [
        OfflineTutorial(title=title, slug=slug(title), length=length, video=VIDEO_DIR / f"{foss}-{slug(title)}.webm",
                        path=f"/watch/{foss}/{slug(title)}/{language}/")
        for title, length in zip(course["tutorials"], course["lengths"], strict=True)
    ]
    return package_response(request, foss, language, course["title"], f"/cdcontent/{foss}/{language}/", tutorials)


def feedback(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return redirect("/feedback/?thanks=1")
    return render(request, "demo/feedback.html", {"thanks": "thanks" in request.GET})
