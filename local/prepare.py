#!/usr/bin/env python
"""Stage 1: index a downloaded data set into DATA_DIR/{train,valid,test}/ after checking it.

Usage: python local/prepare.py --dataset NAME --root ROOT --out DATA_DIR [--sample_rate SR]
[--mode min] [--task sep_clean|sep_noisy] [--n_src 2]. NAME is any data set of the registry
(asteroid_tdanet/data/registry.py: librimix, wham, lrs2_2mix, mini2mix); the logic lives in
asteroid_tdanet.data.prepare.
"""

import sys

from asteroid_tdanet.data.prepare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
