"""Plain helpers that test modules share: functions, classes and constants, one topic a module.

Fixtures live in tests/conftest.py (pytest's way); test modules import nothing from conftest or from
each other, only from here."""
