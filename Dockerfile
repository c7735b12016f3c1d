# One image for the API and the workers of toolchest-wes.

# The wheel is built as for PyPI, sdist first and the wheel from the sdist, and the image
# installs that wheel: what runs here is what a user installs, not the source tree.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir "build>=1.2"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY toolchest_wes ./toolchest_wes
RUN python -m build --outdir /dist .

FROM python:3.11-slim

# Node.js runs the JavaScript of CWL InlineJavascriptRequirement; bubblewrap sandboxes runs
# (it needs unprivileged user namespaces, which Docker's default seccomp profile refuses:
# see the README's Security section).
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs bubblewrap \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 wes \
    && mkdir /data && chown wes /data

# Every engine: cwltool comes with the server, Snakemake with its extra, and Toil in a
# virtualenv of its own (it pins cwltool exactly; see the README's Toil section), found
# through TOOLCHEST_WES_TOIL_VENV. The s3 extra (boto3) serves --storage s3://. Toil and Snakemake runs are offered with --sandbox none.
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir "$(ls /tmp/dist/toolchest_wes-*.whl)[snakemake,s3]" \
    && python -m venv /opt/toil \
    && /opt/toil/bin/pip install --no-cache-dir 'toil[cwl,wdl]==9.6.*' \
    && rm -rf /tmp/dist

# gunicorn reads ./gunicorn.conf.py, so `gunicorn toolchest_wes.server.wsgi:app` started by
# hand in /app takes its settings from the TOOLCHEST_WES_* variables too.
WORKDIR /app
COPY gunicorn.conf.py ./

USER wes
ENV TOOLCHEST_WES_DATA_DIR=/data \
    TOOLCHEST_WES_TOIL_VENV=/opt/toil \
    TOOLCHEST_WES_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080

# Embedded mode by default; docker-compose.yml runs the distributed mode.
CMD ["toolchest-wes", "serve"]
