"""Scalingo Backup Monitor: watches database backups and tells on-call when one needs attention."""

__version__ = "0.1.0"
