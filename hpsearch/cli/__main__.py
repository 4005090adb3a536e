"""`python -m hpsearch.cli`: the same as the `hpsearch` script."""

import sys

from hpsearch.cli import main

sys.exit(main())
