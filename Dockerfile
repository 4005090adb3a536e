# The hpsearch worker image: hpsearch on the CUDA build of torch. Every service in
# docker-compose.yml runs it; the database URL comes from $HPSEARCH_STORAGE at run time and
# nothing secret is built in.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in a layer of its own, so that code changes do not download it again. On Linux,
# torch from PyPI is the CUDA build. Keep the version equal to the pin in pyproject.toml
# (tests/test_compose.py checks it); the dependency layer below then finds it satisfied.
RUN pip install "torch==2.13.0"

# The other dependencies, read from pyproject.toml alone, in a layer that a code change does
# not invalidate (only an edit of pyproject.toml does).
COPY pyproject.toml README.md /src/
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# The code last; its dependencies are all in place.
COPY hpsearch /src/hpsearch
COPY objectives /src/objectives
COPY storage /src/storage
RUN pip install --no-deps /src && rm -rf /src

RUN useradd --create-home --uid 1000 hpsearch \
    && mkdir /app && chown hpsearch:hpsearch /app
USER hpsearch
WORKDIR /app

ENTRYPOINT ["hpsearch"]
CMD ["--help"]
