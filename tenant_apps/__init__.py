"""Django apps installed in every organisation's schema."""
