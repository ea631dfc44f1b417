"""Django apps installed in the public schema only."""
