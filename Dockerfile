# autolr server image. Not built in CI (no Docker engine there): tests/ship_tests checks this file.
# Stage 1 builds a wheel; stage 2 installs it with the server extra into a slim runtime.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autolr ./autolr
COPY client ./client
COPY server ./server
COPY cli ./cli
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTOLR_DATABASE_URL=sqlite:////data/autolr.db
# CPU torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir "$(ls /tmp/autolr-*.whl)[server]" && rm -f /tmp/*.whl
RUN useradd --create-home --uid 10001 autolr && mkdir -p /data && chown autolr:autolr /data
USER autolr
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["autolr", "serve", "--host", "0.0.0.0", "--port", "8000"]
