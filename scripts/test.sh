#!/usr/bin/env bash
# Set up and run the whole test suite. PostgreSQL tests run against
# $HPSEARCH_TEST_POSTGRES_URL, or against the local server at 127.0.0.1:5432 when one answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${HPSEARCH_TEST_POSTGRES_URL:-}" ] \
   && .venv/bin/python -c "import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:5432/test', connect_timeout=3).close()" 2>/dev/null; then
  export HPSEARCH_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test
fi
exec .venv/bin/python -m pytest "$@"
