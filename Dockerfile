# One image for the API and the workers of toolchest-wes.
FROM python:3.11-slim

# Node.js runs the JavaScript of CWL InlineJavascriptRequirement.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 wes \
    && mkdir /data && chown wes /data

WORKDIR /app
COPY pyproject.toml README.md LICENSE gunicorn.conf.py ./
COPY openapi ./openapi
COPY toolchest_wes ./toolchest_wes
RUN pip install --no-cache-dir .

USER wes
ENV TOOLCHEST_WES_DATA_DIR=/data \
    TOOLCHEST_WES_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080

# Embedded mode by default; docker-compose.yml runs the distributed mode.
CMD ["toolchest-wes", "serve"]
