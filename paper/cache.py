"""The paper's results, cached as files named after a stable hash of what produced them.

The mechanism is :mod:`validation.cache`, shared with ``python -m validation.compare``.
Figures and the text of the paper are always drawn from the file just written or read,
so every number in the paper comes from a result file.
"""

from validation.cache import SECONDS, Cache, Job, config_hash

__all__ = ["SECONDS", "Cache", "Job", "config_hash"]
