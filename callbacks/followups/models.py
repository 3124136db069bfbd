"""Tables of this feature (registered on Base.metadata by importing this module)."""

from __future__ import annotations
