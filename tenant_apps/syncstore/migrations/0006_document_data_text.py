"""Documents keep their JSON text beside the jsonb (``data_text``), which pulls pass through.

Nullable and without a default, so adding it rewrites no table and takes no long lock on an
organisation with many documents. Rows written before it are rendered from ``data`` until their next
write (see docs/decisions.md).
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
    ]
