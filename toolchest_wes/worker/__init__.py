"""The Celery side of distributed mode: the app factory, the one task and the reconciler."""
