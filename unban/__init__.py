"""unban: get a locked-out SSH client back in, safely."""

__version__ = "0.1.0"
