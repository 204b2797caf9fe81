"""Single-host network solutions; importing this package registers them."""

from seconetbench.solutions import bridge  # noqa: F401
