"""The demo's tutorial catalogue: courses (foss) with tutorials in several languages.

Each tutorial has a video length in seconds; demo/make_videos.sh renders a test
pattern of exactly that length per tutorial into demo/static/demo/videos/.
"""

from __future__ import annotations

from pathlib import Path

VIDEO_DIR = Path(__file__).resolve().parent / "static" / "demo" / "videos"

CATALOGUE: dict[str, dict] = {
    "BASH": {
        "title": "BASH",
        "homepage": "https://www.gnu.org/software/bash/",
        "languages": ["English", "Hindi"],
        "tutorials": [
            "Introduction to BASH Shell Scripting",
            "Basics of Shell Scripting",
            "Command Line arguments and Quoting",
            "Globbing and Export statement",
            "Array Operations in BASH",
            "More on Arrays",
            "Conditional execution",
            "Loops in BASH",
        ],
        "lengths": [185, 242, 301, 207, 356, 268, 150, 330],
    },
    "Python": {
        "title": "Python 3.4.3",
        "homepage": "https://www.python.org/",
        "languages": ["English", "Tamil"],
        "tutorials": [
            "Getting started with IPython",
            "Using plot command interactively",
            "Embellishing a plot",
            "Saving plots",
            "Lists and operations on lists",
        ],
        "lengths": [212, 275, 190, 240, 320],
    },
}


def slug(title: str) -> str:
    return title.replace(" ", "-")


def find_tutorial(foss: str, tutorial_slug: str, language: str) -> str | None:
    course = CATALOGUE.get(foss)
    if course is None or language not in course["languages"]:
        return None
    for title in course["tutorials"]:
        if slug(title) == tutorial_slug:
            return title
    return None


def video_length(foss: str, title: str) -> int:
    course = CATALOGUE[foss]
    return course["lengths"][course["tutorials"].index(title)]


def all_videos() -> list[tuple[str, int]]:
    """(file name, seconds) of every tutorial video."""
    return [
        (f"{foss}-{slug(t)}.webm", n)
        for foss, c in CATALOGUE.items()
        for t, n in zip(c["tutorials"], c["lengths"], strict=True)
    ]


def course_for(foss: str, language: str) -> list[dict] | None:
    """The course as eventlog's progress API needs it (EVENTLOG_PROGRESS_CATALOGUE):
    its tutorials in order, each with title, video length and watch page URL."""
    course = CATALOGUE.get(foss)
    if course is None or language not in course["languages"]:
        return None
    return [
        {"title": title, "length": length, "url": f"/watch/{foss}/{slug(title)}/{language}/"}
        for title, length in zip(course["tutorials"], course["lengths"], strict=True)
    ]
