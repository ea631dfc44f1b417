"""Seed the four plans. Staff edit them in the admin afterwards; this never overwrites."""

from django.db import migrations

PLANS = [
    # slug, name, price, rpm, burst, docs, devices, doc bytes, batch, retention days, tier, concurrent tasks
    ("free", "Free", 0, 600, 120, 10_000, 10, 256 * 1024, 500, 7, "free", 2),
    ("pro", "Pro", 4_900, 3_000, 600, 1_000_000, 1_000, 512 * 1024, 500, 30, "pro", 4),
    ("business", "Business", 29_900, 12_000, 2_000, 10_000_000, 10_000, 1024 * 1024, 1_000, 90, "business", 8),
    (
        "enterprise",
        "Enterprise",
        0,
        60_000,
        10_000,
        1_000_000_000,
        1_000_000,
        1024 * 1024,
        1_000,
        365,
        "enterprise",
        16,
    ),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for order, (slug, name, price, rpm, burst, docs, devices, size, batch, days, tier, tasks) in enumerate(PLANS):
        Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "monthly_price_cents": price,
                "is_public": slug != "enterprise",
                "sort_order": order,
                "requests_per_minute": rpm,
                "burst": burst,
                "max_documents": docs,
                "max_devices": devices,
                "max_document_bytes": size,
                "max_batch_mutations": batch,
                "tombstone_retention_days": days,
                "queue_tier": tier,
                "max_concurrent_tasks": tasks,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
