"""Portal views, one module per area; organisation pages are guarded by ``access.org_view``."""
