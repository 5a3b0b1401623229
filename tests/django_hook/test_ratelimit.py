"""Budgets in Django's cache: rates, spending, and one count across processes on a shared cache."""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings

from django_hook.ratelimit import Budget, Rate, parse_rate


@pytest.mark.parametrize(("text", "rate"), [("600/m", Rate(600, 60)), ("5/15m", Rate(5, 900)),
                                            (" 10 / s ", Rate(10, 1)), ("1000000/h", Rate(1000000, 3600)),
                                            ("1/d", Rate(1, 86400))])
def test_rates(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["600", "600/minute", "-1/m", "1.5/m", "/m", "10/0.5m"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_spending_up_to_the_budget_and_past_it() -> None:
    budget, key = Budget(f"t-{uuid.uuid4().hex}", "10/h"), "192.0.2.1"
    assert budget.spend(key, 4) and budget.spend(key, 6)
    assert budget.used(key) == 10 and budget.exhausted(key)
    assert not budget.spend(key, 1)
    assert not budget.exhausted("192.0.2.2")
    assert 0 < budget.retry_after() <= 3600


def test_keys_with_any_characters_are_fine() -> None:
    budget = Budget(f"t-{uuid.uuid4().hex}", "1/h")
    assert budget.spend("192.0.2.1|Jöhn Doe: \x00 {}")
    assert not budget.spend("192.0.2.1|Jöhn Doe: \x00 {}")


def test_two_processes_on_a_shared_redis_cache_spend_one_budget(redis_url: str) -> None:
    # Two cache connections as two gunicorn workers have them: what one spends, the other sees.
    shared = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
              "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    with override_settings(CACHES={"default": shared, "worker2": dict(shared)}):
        name = f"t-{uuid.uuid4().hex}"
        first, second = Budget(name, "5/m"), Budget(name, "5/m", alias="worker2")
        assert first.spend("192.0.2.9", 3)
        assert second.spend("192.0.2.9", 2)
        assert not first.spend("192.0.2.9", 1)
        assert second.used("192.0.2.9") == 6
