"""Evict cached plan limits whenever a plan row is saved, including from the admin."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from billing.models import Plan


@receiver(post_save, sender=Plan, dispatch_uid="billing_plan_cache_evict")
def plan_saved(sender: type[Plan], instance: Plan, **kwargs: Any) -> None:
    from billing.services import plan_cache_evict

    plan_cache_evict(instance.slug)
