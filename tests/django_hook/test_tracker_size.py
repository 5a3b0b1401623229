import gzip
from pathlib import Path

import django_hook

TRACKER = Path(django_hook.__file__).parent / "static" / "eventlog" / "tracker.js"


def test_tracker_is_under_5_kb_gzipped_without_even_minifying():
    size = len(gzip.compress(TRACKER.read_bytes(), compresslevel=9))
    assert size < 5 * 1024, f"tracker.js is {size} bytes gzipped"


def test_tracker_calls_no_third_party():
    source = TRACKER.read_text()
    assert "http://" not in source and "https://" not in source
