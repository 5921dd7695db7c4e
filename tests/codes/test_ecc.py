"""The 64-bit marker code: round trips, t = 4 flips corrected, 5 always reported."""

import itertools

import numpy as np
import pytest

from neural_synth.codes import ecc


@pytest.fixture(scope="module")
def code():
    return ecc.marker_code()


def _random_data(rng, num):
    return [bytes(rng.integers(0, 256, ecc.DATA_BYTES).tolist()) for _ in range(num)]


def test_layout_and_round_trip(code):
    data = ecc.pack_message("cat7")
    word = code.encode(data)
    assert word.shape == (64,) and word.dtype == np.uint8 and word.sum() % 2 == 0
    assert np.packbits(word[7:39]).tobytes() == b"cat7"  # Systematic: the data is visible.
    assert int("".join(map(str, word[:7])), 2) == ecc.crc7(b"cat7")
    result = code.decode(word)
    assert result.verified and result.status == "ok" and result.num_corrected == 0
    assert ecc.unpack_message(result.data) == "cat7"


def test_crc7_matches_a_bitwise_reference():
    # CRC-7/MMC of "123456789" is 0x75 (the standard check value).
    assert ecc.crc7(b"123456789") == 0x75


@pytest.mark.parametrize("num_flips", [1, 2, 3, 4])
def test_up_to_t_flips_are_corrected(code, num_flips):
    rng = np.random.default_rng(num_flips)
    for data in _random_data(rng, 300):
        word = code.encode(data)
        noisy = word.copy()
        noisy[rng.choice(64, num_flips, replace=False)] ^= 1
        result = code.decode(noisy)
        assert result.verified and result.data == data and result.num_corrected == num_flips


def test_every_five_flip_pattern_tried_is_reported(code):
    """t + 1 = 5 flips: random patterns anywhere, and every pattern over 22 positions."""
    rng = np.random.default_rng(5)
    word = code.encode(b"cat7")
    patterns = [rng.choice(64, 5, replace=False) for _ in range(2000)]
    # Exhaustive over a window that spans CRC, data, BCH parity and the overall parity.
    window = [0, 3, 6, 7, 12, 20, 25, 31, 38, 39, 41, 45, 50, 52, 55, 57, 59, 60, 61, 62, 63, 1]
    patterns += [np.array(p) for p in itertools.combinations(window, 5)]
    for flips in patterns:
        noisy = word.copy()
        noisy[flips] ^= 1
        result = code.decode(noisy)
        assert not result.verified and result.status in ("uncorrectable", "checksum")


def test_many_flips_never_verify_as_other_data(code):
    """6-12 random flips: decoding fails or (rarely) finds a word whose CRC does not match."""
    rng = np.random.default_rng(6)
    wrong = 0
    for data in _random_data(rng, 400):
        word = code.encode(data)
        noisy = word.copy()
        noisy[rng.choice(64, int(rng.integers(6, 13)), replace=False)] ^= 1
        result = code.decode(noisy)
        wrong += result.verified and result.data != data
    assert wrong == 0


def test_soft_decoding_repairs_errors_on_unconfident_bits(code):
    rng = np.random.default_rng(7)
    fixed = 0
    for data in _random_data(rng, 50):
        word = code.encode(data)
        probs = np.where(word == 1, 0.95, 0.05)
        flips = rng.choice(64, 6, replace=False)  # One more than t: hard decoding fails.
        probs[flips] = np.where(word[flips] == 1, 0.4, 0.6)  # Wrong, but unsure.
        assert not code.decode_probs(probs).verified
        result = code.decode_probs(probs, chase_bits=6)
        assert not result.verified or result.data == data
        fixed += result.verified
    assert fixed == 50


def test_messages_pack_and_unpack():
    assert ecc.pack_message("hi") == b"hi\x00\x00"
    assert ecc.unpack_message(b"hi\x00\x00") == "hi"
    assert ecc.pack_message(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"
    assert ecc.unpack_message(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"  # Not printable.
    with pytest.raises(ValueError, match="at most 4 bytes"):
        ecc.pack_message("cat77")
    with pytest.raises(ValueError, match="at most 4 bytes"):
        ecc.pack_message("é€")  # 5 bytes in UTF-8.
    with pytest.raises(ValueError, match="zero byte"):
        ecc.pack_message(b"a\x00")


def test_bad_bit_inputs_are_clear_errors(code):
    with pytest.raises(ValueError, match="64 raw bits"):
        code.decode(np.zeros(63))
    with pytest.raises(ValueError, match="0/1"):
        code.decode(np.full(64, 2))
    with pytest.raises(ValueError, match="4 bytes"):
        code.encode(b"abc")
