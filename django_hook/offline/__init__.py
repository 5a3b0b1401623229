"""Offline learning packages: a course as a zip that plays from file:// and syncs later.

token.py signs the package's sync token, package.py builds the streamed zip, sync.py
answers the package's sync requests to the progress endpoints (collect/ takes them in
django_hook.beacon). See docs/offline.md.
"""
