"""The built-in change service: the subset of ServiceNow's Table API for ``change_request`` that the
release hook uses, on a real database through SQLAlchemy (SQLite by default, any SQLAlchemy URL)."""
