"""Documents keep their JSON text beside the jsonb (``data_text``), which pulls pass through, and the
version it belongs to (``data_text_version``).

Nullable and without a default, so adding them rewrites no table and takes no long lock on an
organisation with many documents. Rows written before them, or by the previous release while a
rolling upgrade runs, are rendered from ``data`` (see docs/decisions.md and
``manage.py backfill_document_text``).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("syncstore", "0005_document_feed_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="data_text",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="document",
            name="data_text_version",
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
    ]
