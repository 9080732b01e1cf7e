"""Where the rehearsal and the tests find Mall_Customers.csv.

The project's shared folder beside the clone (../shared/data) is preferred; a clone without it uses the
copy the stack deploys by default (stacks.config.DEFAULT_DATASET; tests/stacks keeps the two identical).
"""

from __future__ import annotations

from stacks.config import DEFAULT_DATASET, REPO_ROOT

SHARED_DATASET = REPO_ROOT.parent / "shared" / "data" / "Mall_Customers.csv"
SAMPLE_DATASET = REPO_ROOT / DEFAULT_DATASET
DATASET = SHARED_DATASET if SHARED_DATASET.is_file() else SAMPLE_DATASET
