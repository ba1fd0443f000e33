"""REST handlers, one module per resource; routes in ``routes.py``."""
