"""The scrubber lives in `apex.core.secrets` (stages use it too, and stages never import tracking); re-exported here."""

from apex.core.secrets import (
    holds_secret,
    install_log_scrubber,
    reject_secrets_in_config,
    scrub,
    scrub_mapping,
    secret_in_overrides,
    secret_values,
)

__all__ = [
    "holds_secret",
    "install_log_scrubber",
    "reject_secrets_in_config",
    "scrub",
    "scrub_mapping",
    "secret_in_overrides",
    "secret_values",
]
