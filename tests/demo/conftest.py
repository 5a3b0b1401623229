"""The demo's tests run Django in-process with the hook tests' setup (demo settings, a private
spool and var directory)."""

from tests.django_hook.conftest import spool_events  # noqa: F401 - importing it sets Django up
