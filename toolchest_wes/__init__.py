"""toolchest-wes: a GA4GH Workflow Execution Service 1.1 server and client."""

__version__ = "0.1.0"
