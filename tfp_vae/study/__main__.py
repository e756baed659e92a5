"""`python -m tfp_vae.study`: the KL study from the shell (same options as `tfp-vae compare-kl`)."""

import sys

from tfp_vae.study.runner import main

sys.exit(main())
