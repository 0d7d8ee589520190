"""`python -m strata_ray run ...`: the same as the `strata-ray` console script."""

import sys

from strata_ray.driver import main

sys.exit(main())
