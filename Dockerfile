# Wangqian API. Build: docker build -t wangqian .   Run: see compose.yaml.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY signing ./signing
COPY notifications ./notifications
COPY miniapp_mock ./miniapp_mock
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    WANGQIAN_DATA_DIR=/var/lib/wangqian \
    WANGQIAN_PDF_FONT=/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc
# The CJK font contract PDFs are typeset in: without it the service refuses to start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/wangqian --create-home wangqian
USER wangqian
WORKDIR /var/lib/wangqian
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
CMD ["wangqian", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
