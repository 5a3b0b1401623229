"""Tutorial progress rollup: a snapshot of ``tutorial_progress_logs`` into ``stats_tutorials``.

The collection holds one document per (user, foss, language, tutorial), so it is
small; it is recomputed whole on every run (unchanged from before the rollups
became incremental). nx-27017 groups neither on compound keys nor with ``$cond``
inside ``$sum``: compound keys are one ``$concat`` string split again in Python,
and each condition is its own ``$match``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ReplaceOne

from .common import COURSE_BUCKETS, KEY_SEP, STATS_TUTORIALS, TUTORIAL_PROGRESS_LOGS
from .common import ref as _ref

MOST_REWATCHED = 10


def _key_expression(paths: list[str]) -> Any:
    """$group key for several fields: one $concat string (nx-27017 does not group by a compound _id)."""
    pieces: list[Any] = []
    for i, path in enumerate(paths):
        if i:
            pieces.append(KEY_SEP)
        pieces.append({"$ifNull": [{"$toString": f"${path}"}, ""]})
    return {"$concat": pieces}


def _split_key(value: Any, n: int) -> tuple[Any, ...]:
    parts = (value or "").split(KEY_SEP)
    parts = (parts + [""] * n)[:n]
    return tuple(p if p != "" else None for p in parts)


def _course_bucket(percent: float) -> str:
    for upper, label in zip((25, 50, 75), COURSE_BUCKETS, strict=False):
        if percent < upper:
            return label
    return COURSE_BUCKETS[-1]


def _group_rows(coll: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(coll.aggregate(pipeline))


def rollup_tutorials(db: Any, tutorials: dict[str, list[str]] | None = None,
                     now: datetime | None = None) -> dict[str, Any]:
    """Recompute the tutorial progress snapshot into stats_tutorials.

    Documents (``_id``):

    - ``"tutorial|<foss>|<language>|<tutorial>"``, kind "tutorial": foss, language,
      tutorial, learners, completions, completions_manual, completion_rate,
      avg_minutes_watched, total_minutes, total_visits, avg_visits, rewatchers
      (learners with visits > 1);
    - ``"course|<foss>|<language>"``, kind "course": foss, language,
      tutorials_in_course, learners, completed_course, distribution
      ({"0-25": n, "25-50": n, "50-75": n, "75-100": n}: learners by the share of
      the course's tutorials they completed; 100 % falls in 75-100). The course is
      ``tutorials[foss]`` when given, else every tutorial of that foss seen in the logs;
    - ``"summary"``, kind "summary": learners (distinct users), records,
      completions, completion_rate, avg_minutes_watched, total_visits,
      avg_visits_per_user, rewatched_records, most_rewatched (top tutorials by
      rewatchers, then total visits).

    Returns the summary document.
    """
    now = now or datetime.now(UTC)
    coll = db[TUTORIAL_PROGRESS_LOGS]
    key = _key_expression(["foss", "language", "tutorial"])
    per_tutorial: dict[tuple[Any, ...], dict[str, Any]] = {}

    def tutorial_entry(k: Any) -> dict[str, Any]:
        parts = _split_key(k, 3)
        return per_tutorial.setdefault(parts, {
            "foss": parts[0], "language": parts[1], "tutorial": parts[2], "learners": 0, "completions": 0,
            "completions_manual": 0, "minutes_watched": 0, "total_minutes": None, "total_visits": 0,
            "rewatchers": 0,
        })

    watched = {"$size": {"$ifNull": ["$minutes_watched", []]}}
    for row in _group_rows(coll, [
        {"$project": {"k": key, "w": watched, "visits": 1, "total_minutes": 1}},
        {"$group": {"_id": "$k", "n": {"$sum": 1}, "w": {"$sum": "$w"}, "visits": {"$sum": "$visits"},
                    "total_minutes": {"$max": "$total_minutes"}}},
    ]):
        entry = tutorial_entry(row["_id"])
        entry.update(learners=row["n"], minutes_watched=row["w"] or 0, total_visits=row["visits"] or 0,
                     total_minutes=row["total_minutes"])
    # $cond inside $sum is rejected by nx-27017: one $match per condition instead.
    for match, name in (({"completed": True}, "completions"),
                        ({"completed": True, "manual": True}, "completions_manual"),
                        ({"visits": {"$gt": 1}}, "rewatchers")):
        for row in _group_rows(coll, [{"$match": match}, {"$project": {"k": key}},
                                      {"$group": {"_id": "$k", "n": {"$sum": 1}}}]):
            tutorial_entry(row["_id"])[name] = row["n"]

    # Course progress: per (user, foss, language), the completed tutorials.
    user_key = _key_expression(["username", "foss", "language"])
    learners_of: dict[tuple[Any, Any], set[Any]] = {}
    for row in _group_rows(coll, [{"$project": {"k": user_key}}, {"$group": {"_id": "$k"}}]):
        user, foss, language = _split_key(row["_id"], 3)
        learners_of.setdefault((foss, language), set()).add(user)
    completed_by: dict[tuple[Any, Any, Any], set[Any]] = {}
    for row in _group_rows(coll, [{"$match": {"completed": True}},
                                  {"$project": {"k": user_key, "t": "$tutorial"}},
                                  {"$group": {"_id": "$k", "t": {"$addToSet": "$t"}}}]):
        completed_by[_split_key(row["_id"], 3)] = set(row["t"] or [])
    seen_titles: dict[Any, set[Any]] = {}
    for foss, _language, title in per_tutorial:
        seen_titles.setdefault(foss, set()).add(title)

    docs: list[dict[str, Any]] = []
    for parts, entry in sorted(per_tutorial.items(), key=lambda kv: [str(p) for p in kv[0]]):
        learners = entry["learners"]
        doc = {
            "_id": "tutorial|" + _ref(parts), "kind": "tutorial",
            **{k: entry[k] for k in ("foss", "language", "tutorial", "learners", "completions",
                                     "completions_manual", "total_minutes", "total_visits", "rewatchers")},
            "completion_rate": round(entry["completions"] / learners, 4) if learners else 0.0,
            "avg_minutes_watched": round(entry["minutes_watched"] / learners, 2) if learners else 0.0,
            "avg_visits": round(entry["total_visits"] / learners, 2) if learners else 0.0,
            "computed_at": now,
        }
        docs.append(doc)
    for (foss, language), users in sorted(learners_of.items(), key=lambda kv: [str(p) for p in kv[0]]):
        course = set(tutorials[foss]) if tutorials and foss in tutorials else seen_titles.get(foss, set())
        distribution = dict.fromkeys(COURSE_BUCKETS, 0)
        full = 0
        for user in users:
            done = len(completed_by.get((user, foss, language), set()) & course)
            percent = 100.0 * done / len(course) if course else 0.0
            distribution[_course_bucket(percent)] += 1
            full += bool(course) and done == len(course)
        docs.append({
            "_id": "course|" + _ref((foss, language)), "kind": "course", "foss": foss, "language": language,
            "tutorials_in_course": len(course), "learners": len(users), "completed_course": full,
            "distribution": distribution, "computed_at": now,
        })

    usernames = {row["_id"] for row in _group_rows(coll, [{"$group": {"_id": "$username"}}])} - {None}
    records = sum(e["learners"] for e in per_tutorial.values())
    completions = sum(e["completions"] for e in per_tutorial.values())
    visits = sum(e["total_visits"] for e in per_tutorial.values())
    minutes = sum(e["minutes_watched"] for e in per_tutorial.values())
    rewatched = sorted((e for e in per_tutorial.values() if e["rewatchers"] > 0),
                       key=lambda e: (-e["rewatchers"], -e["total_visits"], str(e["foss"]), str(e["language"]),
                                      str(e["tutorial"])))
    summary = {
        "_id": "summary", "kind": "summary", "learners": len(usernames), "records": records,
        "completions": completions,
        "completion_rate": round(completions / records, 4) if records else 0.0,
        "avg_minutes_watched": round(minutes / records, 2) if records else 0.0,
        "total_visits": visits,
        "avg_visits_per_user": round(visits / len(usernames), 2) if usernames else 0.0,
        "rewatched_records": sum(e["rewatchers"] for e in per_tutorial.values()),
        "most_rewatched": [{k: e[k] for k in ("foss", "language", "tutorial", "rewatchers", "total_visits")}
                           for e in rewatched[:MOST_REWATCHED]],
        "computed_at": now,
    }
    docs.append(summary)
    stats = db[STATS_TUTORIALS]
    stats.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
    stats.delete_many({"_id": {"$nin": [d["_id"] for d in docs]}})
    return {k: v for k, v in summary.items() if k not in ("_id", "kind", "computed_at")}

