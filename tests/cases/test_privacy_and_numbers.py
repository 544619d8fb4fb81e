"""Masking of personal data, the hashed second factor, and case numbers nobody can guess."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.cases import (
    ALPHABET,
    binding_link,
    binding_start_param,
    new_binding_code,
    new_case_number,
    normalize_case_number,
    parse_start_param,
)
from models.privacy import (
    InvalidPhone,
    hash_factor,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
    new_salt,
    normalize_phone,
    phone_factor,
    verify_factor,
)

TODAY = dt.date(2026, 3, 15)


def test_phone_is_masked_like_138_stars_5678() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("138 1234 5678") == "138****5678"


def test_id_number_keeps_only_prefix_and_check_digits() -> None:
    masked = mask_id_number("11010119900307123X")
    assert masked == "1101**********123X"
    assert "19900307" not in masked


def test_names_are_masked() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("王小明") == "王*明"
    assert mask_name("欧阳小明") == "欧**明"


def test_numbers_inside_free_text_are_masked() -> None:
    text = mask_text("申请人电话13812345678，身份证11010119900307123X，编号2026001")
    assert "13812345678" not in text and "138****5678" in text
    assert "11010119900307123X" not in text
    assert "2026001" in text  # other numbers are left alone


@pytest.mark.parametrize("raw", ["+86 138-1234-5678", "0086 13812345678", "(0571) 8888 6666"])
def test_phone_numbers_in_common_shapes_are_accepted(raw: str) -> None:
    assert normalize_phone(raw).isdigit()


@pytest.mark.parametrize("raw", ["", "abc", "123", "12812345678", "138123456789012"])
def test_impossible_phone_numbers_are_refused_in_chinese(raw: str) -> None:
    with pytest.raises(InvalidPhone, match="号码"):
        normalize_phone(raw)


def test_second_factor_is_last_four_digits_and_hash_is_salted() -> None:
    assert phone_factor("138-1234-5678") == "5678"
    s1, s2 = new_salt(), new_salt()
    h1 = hash_factor("5678", s1)
    assert verify_factor("5678", s1, h1)
    assert not verify_factor("5679", s1, h1)
    assert hash_factor("5678", s2) != h1  # same factor, other case: nothing to compare across cases
    assert "5678" not in h1


# --- case numbers -----------------------------------------------------------------------------------


def test_case_number_shape() -> None:
    number = new_case_number(TODAY)
    assert re.fullmatch(r"YC260315[0-9A-HJKMNP-TV-Z]{9}", number)
    assert normalize_case_number(number) == number


def test_case_numbers_have_no_sequential_part() -> None:
    numbers = [new_case_number(TODAY) for _ in range(2000)]
    assert len(set(numbers)) == len(numbers)
    # Each random position takes many values: nothing counts up, nothing is fixed.
    for pos in range(8, 16):
        assert len({n[pos] for n in numbers}) > 25


def test_typed_variants_of_a_number_are_recognised() -> None:
    number = new_case_number(TODAY)
    spaced = f" {number[:2].lower()}-{number[2:8]} {number[8:].lower()} "
    assert normalize_case_number(spaced) == number
    # People type O for 0 and I or L for 1.
    typed = number[:8] + number[8:].replace("0", "O").replace("1", "I")
    assert normalize_case_number(typed) == number


@given(st.integers(min_value=0, max_value=8), st.sampled_from(ALPHABET))
def test_any_single_wrong_character_is_caught(pos: int, ch: str) -> None:
    number = new_case_number(TODAY)
    index = 8 + pos  # the random part and the check character
    if number[index] == ch:
        return
    typo = number[:index] + ch + number[index + 1 :]
    assert normalize_case_number(typo) is None


def test_swapped_neighbours_are_caught_most_of_the_time() -> None:
    caught = total = 0
    for _ in range(300):
        number = new_case_number(TODAY)
        for i in range(8, 16):
            if number[i] != number[i + 1]:
                swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
                total += 1
                caught += normalize_case_number(swapped) is None
    assert caught / total > 0.9


@pytest.mark.parametrize("text", ["", "YC", "hello", "YC2603150000", "XX260315ABCDEFGHJ"])
def test_non_numbers_are_not_numbers(text: str) -> None:
    assert normalize_case_number(text) is None


def test_deep_link_payload_round_trips_within_telegram_limits() -> None:
    number, code = new_case_number(TODAY), new_binding_code()
    param = binding_start_param(number, code)
    assert len(param) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", param)
    assert parse_start_param(param) == (number, code)
    assert binding_link("@yichuang_bot", number, code) == f"https://t.me/yichuang_bot?start={param}"
    assert parse_start_param("c_" + number + "_short") is None
    assert parse_start_param("hello") is None
