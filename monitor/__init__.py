"""Outlet Monitor: watch outlets, archive their posts, alert on saved queries."""

import sys

__version__ = "0.1.0"

# httpx imports its command-line client whenever click, rich and pygments are installed
# (sqlite-utils brings click): several ms of every start, for a `main` the monitor never
# calls. A None entry makes that import fail, which httpx handles as it does when they are
# missing. Set here, before anything of ours imports httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
