from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from demo.catalogue import CATALOGUE, find_tutorial, slug, video_length
from django_hook.progress_views import course_state, tutorial_state
from pipeline.progress import summary


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
    if request.GET.get("t", "").isdigit():
        resume = int(request.GET["t"])
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


def feedback(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return redirect("/feedback/?thanks=1")
    return render(request, "demo/feedback.html", {"thanks": "thanks" in request.GET})
