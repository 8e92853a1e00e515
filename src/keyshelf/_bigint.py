"""Decimal text <-> ``int`` in subquadratic time, for integers of any size.

CPython's own conversions are quadratic in the number of digits (and ``int()``
/ ``str()`` refuse more than ``sys.get_int_max_str_digits()`` digits), so a
stored integer of a million digits took about a minute to decode. Both
directions here split the number in halves and join the halves with one big
multiplication, which CPython (Karatsuba) and the ``decimal`` module (number
theoretic transform) do in subquadratic time: a million digits convert in
about half a second each way, ten times fewer digits about thirty times faster.
Small numbers take CPython's direct path.
"""

from __future__ import annotations

import decimal

# Digits (and bits) below which CPython's own conversion is fast and allowed:
# well under the default int_max_str_digits of 4,300.
_DIGITS = 2000
_BITS = 6000


def int_from_text(text: str) -> int:
    """The int of ``text``, decimal digits with an optional leading ``-``.

    The caller validates the syntax; this only converts.
    """
    if len(text) <= _DIGITS:
        return int(text)
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    powers: dict[int, int] = {}

    def power(k: int) -> int:
        p = powers.get(k)
        if p is None:
            p = powers[k] = 10**k
        return p

    def convert(low: int, high: int) -> int:
        if high - low <= _DIGITS:
            return int(digits[low:high])
        split = high - (high - low) // 2
        return convert(low, split) * power(high - split) + convert(split, high)

    value = convert(0, len(digits))
    return -value if negative else value


def int_to_text(value: int) -> str:
    """The decimal text of ``value`` (``str(value)`` without the digit limit)."""
    if value.bit_length() <= _BITS:
        return str(value)
    negative = value < 0
    magnitude = -value if negative else value
    with decimal.localcontext() as ctx:
        # Exact integer arithmetic: unlimited precision, and any rounding is an error.
        ctx.prec = decimal.MAX_PREC
        ctx.Emax = decimal.MAX_EMAX
        ctx.Emin = decimal.MIN_EMIN
        ctx.traps[decimal.Inexact] = True
        two = decimal.Decimal(2)
        powers: dict[int, decimal.Decimal] = {}

        def power(k: int) -> decimal.Decimal:
            p = powers.get(k)
            if p is None:
                p = powers[k] = two**k
            return p

        def convert(n: int, bits: int) -> decimal.Decimal:
            if bits <= _BITS:
                return decimal.Decimal(n)
            k = bits // 2
            high = n >> k
            return convert(high, bits - k) * power(k) + convert(n - (high << k), k)

        text = str(convert(magnitude, magnitude.bit_length()))
    return "-" + text if negative else text
