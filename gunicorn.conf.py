"""Gunicorn settings for deployments that start gunicorn directly.

    gunicorn toolchest_wes.server.wsgi:app

Every value comes from the TOOLCHEST_WES_* environment variables, as for `toolchest-wes serve`.
"""

from toolchest_wes.server.gunicorn_conf import *  # noqa: F403
