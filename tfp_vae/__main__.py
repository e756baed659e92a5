"""`python -m tfp_vae` runs the `tfp-vae` command."""

import sys

from tfp_vae.cli import main

sys.exit(main())
