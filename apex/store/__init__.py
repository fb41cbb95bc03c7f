"""The data store: prepared splits, ERM maps and mined negatives, addressed by the inputs that determine them."""

from apex.store.config import StoreConfig

__all__ = ["StoreConfig"]
