"""A 64-bit marker payload: 32 data bits protected by an extended BCH code and a CRC.

Layout of the 64 raw bits (index 0 first; this is the order the synthesizer
receives them in):

  [0:7]    CRC-7 of the data (polynomial x^7 + x^3 + 1)
  [7:39]   the data: 4 bytes, most significant bit first
  [39:63]  BCH parity: 24 bits of the binary BCH(63, 39) code, m = 6, t = 4
  [63]     overall parity: XOR of bits 0..62, so every codeword has even weight

Bits 0..62 are one codeword of BCH(63, 39) (minimum distance 9; the CRC sits
in its 7 highest-degree message positions, so the CRC is error-corrected too),
and with the overall parity bit the 64 bits form the extended code, minimum
distance 10: any 4 flipped bits are corrected and any 5 are always detected.
Decoding is bounded-distance (radius 4). A word is *verified* only when a
codeword lies within distance 4 of it, the overall parity agrees and the CRC
of the corrected data matches, so 6 or more flips that land near another
codeword are still caught by the CRC in 127 of 128 cases.

The decoder is the Linux kernel's BCH library (`bchlib`), which handles
byte-aligned shortened codes (here 32 message bits + 24 parity). The 7 CRC
bits lie beyond its reach, so `MarkerCode` enumerates them: for each guess h
of those bits within distance 4 of the received ones it subtracts h's share
of the parity (the code is linear) and lets bchlib correct the rest; because
the minimum distance is 9, at most one guess can end within total distance 4,
which makes the search an exact bounded-distance decoder.

Soft decoding (`decode_probs`, Chase-II): when the hard decision fails, the
`chase_bits` least confident bits are flipped in every combination, each
pattern is hard-decoded, and the verified codeword closest to the soft
evidence wins.

References: Bose & Ray-Chaudhuri 1960, Hocquenghem 1959 (BCH codes); Chase,
"A class of algorithms for decoding block codes with channel measurement
information", IEEE Trans. Inf. Theory 1972; the Linux kernel's lib/bch.c.
"""

import dataclasses
import functools
import itertools

import numpy as np

NUM_RAW_BITS = 64
DATA_BYTES = 4
NUM_DATA_BITS = 8 * DATA_BYTES
CORRECTABLE = 4  # t: flipped bits that are always corrected.
_CRC_BITS = 7
_CRC_POLY = 0b0001001  # x^7 + x^3 + 1 (the x^7 term implied).
_PARITY_BITS = 24  # m * t = 6 * 4.
_SHORT_BITS = NUM_DATA_BITS + _PARITY_BITS  # What bchlib sees: 56 bits.


@dataclasses.dataclass(frozen=True)
class Decoded:
    """The result of decoding 64 raw bits.

    Attributes:
      data: the 4 data bytes of the corrected codeword, or None if no codeword
        is within distance 4.
      verified: True only when a codeword was found, its overall parity agrees
        and its CRC matches.
      num_corrected: raw bits changed to reach the codeword (-1 if none).
      status: 'ok' (verified), 'uncorrectable' (more than 4 flips, detected) or
        'checksum' (a codeword was found but its CRC does not match: also more
        than 4 flips).
      bits: the 64 corrected raw bits (0/1 uint8) when a codeword was found.
      soft_cost: from `decode_probs`: the sum of |logit| over the bits the
        correction changed (nats; 0 for hard decoding). Genuine errors sit on
        unsure bits, so a large cost flags a codeword reached by chance.
    """

    data: bytes | None
    verified: bool
    num_corrected: int
    status: str
    bits: np.ndarray | None = None
    soft_cost: float = 0.0


def crc7(data: bytes) -> int:
    """CRC-7 (polynomial x^7 + x^3 + 1, initial value 0, MSB first) of `data`."""
    crc = 0
    for byte in data:
        for i in range(7, -1, -1):
            feedback = ((crc >> 6) & 1) ^ ((byte >> i) & 1)
            crc = (crc << 1) & 0x7F
            if feedback:
                crc ^= _CRC_POLY
    return crc


def _polymod(value: int, divisor: int) -> int:
    """Remainder of GF(2) polynomials held as ints (bit i = coefficient of x^i)."""
    degree = divisor.bit_length() - 1
    for i in range(value.bit_length() - 1, degree - 1, -1):
        if (value >> i) & 1:
            value ^= divisor << (i - degree)
    return value


def _to_bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def _from_bits(bits) -> int:
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


class MarkerCode:
    """Encoder/decoder of the 64-bit layout in the module docstring."""

    def __init__(self):
        import bchlib  # Lazy: a small C extension only payload coding needs.

        self._bch = bchlib.BCH(CORRECTABLE, m=6)
        if self._bch.ecc_bits != _PARITY_BITS:
            raise ImportError(f"bchlib gave {self._bch.ecc_bits} parity bits, expected 24.")
        # g(x) = x^24 + (x^24 mod g): the parity of the message polynomial 1.
        low = int.from_bytes(self._bch.encode(bytes(DATA_BYTES - 1) + b"\x01"), "big")
        generator = (1 << _PARITY_BITS) | low
        if _polymod((1 << 63) | 1, generator) != 0:
            raise ImportError("bchlib's BCH(63, 39) generator does not divide x^63 + 1.")
        # Parity share of each value h of the 7 CRC positions (degrees 56..62).
        self._crc_parity = [_polymod(h << _SHORT_BITS, generator) for h in range(128)]
        self._guesses = [
            [m for m in range(128) if bin(m).count("1") == w] for w in range(CORRECTABLE + 1)
        ]

    # ------------------------------------------------------------------ encode
    def encode(self, data: bytes) -> np.ndarray:
        """64 raw bits [64] (uint8 0/1) for 4 data bytes."""
        data = bytes(data)
        if len(data) != DATA_BYTES:
            raise ValueError(f"data must be {DATA_BYTES} bytes, got {len(data)}.")
        crc = crc7(data)
        parity = int.from_bytes(self._bch.encode(data), "big") ^ self._crc_parity[crc]
        word = _to_bits(crc, _CRC_BITS) + _to_bits(int.from_bytes(data, "big"), NUM_DATA_BITS)
        word += _to_bits(parity, _PARITY_BITS)
        return np.array([*word, sum(word) % 2], np.uint8)

    # ------------------------------------------------------------------ decode
    def decode(self, bits) -> Decoded:
        """Bounded-distance decoding of 64 hard bits (0/1 or booleans) [64]."""
        bits = _check_bits(bits)
        found = self._nearest_codeword(bits)
        if found is None:
            return Decoded(None, False, -1, "uncorrectable")
        word, distance = found
        data = int(_from_bits(word[_CRC_BITS : _CRC_BITS + NUM_DATA_BITS])).to_bytes(4, "big")
        if crc7(data) != _from_bits(word[:_CRC_BITS]):
            return Decoded(data, False, distance, "checksum", word)
        return Decoded(data, True, distance, "ok", word)

    def _nearest_codeword(self, bits: np.ndarray) -> tuple[np.ndarray, int] | None:
        """(64-bit codeword, distance) within distance 4 of `bits`, or None."""
        crc = _from_bits(bits[:_CRC_BITS])
        data = bytes(np.packbits(bits[_CRC_BITS : _CRC_BITS + NUM_DATA_BITS]))
        parity = _from_bits(bits[_CRC_BITS + NUM_DATA_BITS : 63])
        for weight, masks in enumerate(self._guesses):
            for mask in masks:
                guess = crc ^ mask
                buffer = bytearray(data)
                ecc = bytearray((parity ^ self._crc_parity[guess]).to_bytes(3, "big"))
                errors = self._bch.decode(buffer, ecc)
                if errors < 0 or weight + errors > CORRECTABLE:
                    continue
                self._bch.correct(buffer, ecc)
                fixed = int.from_bytes(ecc, "big") ^ self._crc_parity[guess]
                word = _to_bits(guess, _CRC_BITS) + _to_bits(int.from_bytes(buffer, "big"), 32)
                word += _to_bits(fixed, _PARITY_BITS)
                word.append(sum(word) % 2)
                word = np.array(word, np.uint8)
                distance = int(np.sum(word != bits))
                # d_min = 9 makes this the only codeword within 4 of bits[:63].
                return (word, distance) if distance <= CORRECTABLE else None
        return None

    def decode_probs(self, probs, *, chase_bits: int = 0) -> Decoded:
        """Decodes bit probabilities [64] (P(bit = 1)); Chase-II over `chase_bits` if > 0.

        With chase_bits = 0 this is `decode(probs > 0.5)`. Otherwise, when
        that fails, every flip pattern of the `chase_bits` least confident bits
        is decoded and the verified codeword with the smallest soft distance
        (sum of |logit| over the bits it changes) is returned.
        """
        probs = np.clip(np.asarray(probs, np.float64).reshape(-1), 1e-7, 1 - 1e-7)
        if probs.shape != (NUM_RAW_BITS,):
            raise ValueError(f"need {NUM_RAW_BITS} bit probabilities, got {probs.size}.")
        hard = (probs > 0.5).astype(np.uint8)
        reliability = np.abs(np.log(probs) - np.log1p(-probs))
        first = self.decode(hard)
        if first.bits is not None:
            cost = float(np.sum(reliability[first.bits != hard]))
            first = dataclasses.replace(first, soft_cost=cost)
        if first.verified or chase_bits <= 0:
            return first
        weakest = np.argsort(reliability)[:chase_bits]
        best, best_cost = first, np.inf
        for pattern in itertools.product((0, 1), repeat=chase_bits):
            trial = hard.copy()
            trial[weakest] ^= np.array(pattern, np.uint8)
            result = self.decode(trial)
            if result.verified:
                cost = float(np.sum(reliability[result.bits != hard]))
                if cost < best_cost:
                    best, best_cost = result, cost
        if best is first:
            return first
        changed = best.bits != hard
        return dataclasses.replace(
            best, num_corrected=int(np.sum(changed)), soft_cost=float(best_cost)
        )


def _check_bits(bits) -> np.ndarray:
    bits = np.asarray(bits).reshape(-1)
    if bits.shape != (NUM_RAW_BITS,):
        raise ValueError(f"need {NUM_RAW_BITS} raw bits, got {bits.size}.")
    if bits.dtype != bool and not np.all((bits == 0) | (bits == 1)):
        raise ValueError("raw bits must be 0/1 (or booleans).")
    return bits.astype(np.uint8)


@functools.cache
def marker_code() -> MarkerCode:
    """The shared MarkerCode (bchlib's tables are built once per process)."""
    return MarkerCode()


def pack_message(message: str | bytes) -> bytes:
    """A text (UTF-8) or bytes message -> the 4 data bytes (zero-padded).

    Raises ValueError naming the limit when the message is longer than 4
    bytes, and for a message ending in a zero byte (padding would eat it).
    """
    raw = message.encode("utf-8") if isinstance(message, str) else bytes(message)
    if len(raw) > DATA_BYTES:
        raise ValueError(
            f"message {message!r} is {len(raw)} bytes; a marker carries at most {DATA_BYTES} "
            f"bytes ({NUM_DATA_BITS} data bits): shorten it (e.g. 'cat7')."
        )
    if raw.endswith(b"\x00"):
        raise ValueError("a message may not end with a zero byte (it is the padding).")
    return raw + bytes(DATA_BYTES - len(raw))


def unpack_message(data: bytes) -> str | bytes:
    """The 4 data bytes -> the message: text when it is printable UTF-8, else bytes."""
    raw = bytes(data).rstrip(b"\x00")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return text if text.isprintable() else raw
