"""`python -m lib.bookings`: stream generated bookings to an Events API (see `cli`)."""

import sys

from .cli import main

sys.exit(main())
