"""Workflow engines and the one place that starts engine processes."""
