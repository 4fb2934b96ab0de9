"""What the portal's forms share."""

from decimal import Decimal


def decimal_for_field(value: Decimal) -> str:
    """A stored Decimal as a form field shows it: every significant digit, no padding, never an exponent
    (15, 0.075, 300 — not 15.00000000 or 3E+2)."""
    return f"{value.normalize():f}"
