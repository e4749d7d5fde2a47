"""Search spaces, registered by name: ``get_space("autoformer-tiny-micro")``."""

from vitnas.spaces import autoformer, nasbench201, pit, swin  # noqa: F401  (registration)
from vitnas.spaces.base import SPACES, SearchSpace, get_space, list_spaces

__all__ = ["SPACES", "SearchSpace", "get_space", "list_spaces"]
