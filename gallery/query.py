"""Query parameters that name an id or a number, read safely.

``"²".isdigit()`` is true and ``int("²")`` fails; a 23-digit id overflows the database's 64-bit
integers; 5,000 digits exceed Python's int-conversion limit. Every view reads such parameters
through ``query_number`` instead, so the worst value is "absent", never a 500.
"""

MAX_ID = 2**63 - 1
_MAX_DIGITS = len(str(MAX_ID))


def query_number(value, *, minimum=1, maximum=MAX_ID):
    """The integer spelled by ``value`` in ASCII digits within minimum..maximum, else None."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > _MAX_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None
