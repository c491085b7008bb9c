"""Outlet Monitor: watch outlets, archive their posts, alert on saved queries."""

__version__ = "0.1.0"
