"""The demo's tutorial catalogue: courses (foss) with tutorials in several languages."""

from __future__ import annotations

CATALOGUE: dict[str, dict] = {
    "BASH": {
        "title": "BASH",
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
    },
    "Python": {
        "title": "Python 3.4.3",
        "languages": ["English", "Tamil"],
        "tutorials": [
            "Getting started with IPython",
            "Using plot command interactively",
            "Embellishing a plot",
            "Saving plots",
            "Lists and operations on lists",
        ],
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
