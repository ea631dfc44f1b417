"""The progress bar long management commands share (``migrate_tenants``, ``backfill_document_text``)."""

from __future__ import annotations

from io import StringIO

from django.core.management.base import OutputWrapper

from shared_apps.core.cli import ProgressBar


def test_a_log_gets_plain_lines_with_counts_unit_and_rate() -> None:
    stream = StringIO()
    progress = ProgressBar(OutputWrapper(stream), 4, verb="backfilling", unit="documents")
    progress.advance(3)
    progress.advance()  # the last step always draws
    progress.close()
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("backfilling [############################] 4/4 100%")
    assert "documents/s" in last


def test_more_work_than_counted_beforehand_never_overflows_the_bar() -> None:
    stream = StringIO()
    progress = ProgressBar(OutputWrapper(stream), 2, verb="migrating", unit="schemas")
    progress.advance(5)
    assert "2/2 100%" in stream.getvalue()


def test_nothing_to_do_or_disabled_draws_nothing() -> None:
    for total, enabled in ((0, True), (3, False)):
        stream = StringIO()
        progress = ProgressBar(OutputWrapper(stream), total, verb="migrating", unit="schemas", enabled=enabled)
        progress.advance(3)
        progress.close()
        assert stream.getvalue() == ""
