"""Personal data: masking for display and logs, and the hashed second factor.

The full phone number is never stored: a case keeps the masked form for display and a salted,
slow hash of its last 4 digits (the second factor the applicant types to see the case). Four
digits are only 10,000 possibilities, so the hash is scrypt with a per-case salt: a stolen
database still costs real work per case, and the lockout (models/lockout.py) bounds online guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# scrypt cost: ~15 ms per check here, small next to a Telegram round trip, large for brute force.
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}
SALT_BYTES = 16

_PHONE_CHARS = re.compile(r"[\s\-()（）]")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_ID_NUMBER = re.compile(r"\d{17}[\dXx]")
# Inside free text: an 18-char ID or an 11-digit mobile number not glued to other digits.
_ID_IN_TEXT = re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])")
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


class InvalidPhone(ValueError):
    """The phone number cannot be a real one; str() is a Chinese message for the user."""


def normalize_phone(raw: str) -> str:
    """Digits only; accepts spaces, dashes and a +86 / 0086 prefix. Raises InvalidPhone."""
    s = _PHONE_CHARS.sub("", raw or "")
    if s.startswith("+86"):
        s = s[3:]
    elif s.startswith("0086"):
        s = s[4:]
    if not s.isdigit() or not 7 <= len(s) <= 12:
        raise InvalidPhone("电话号码格式不正确，请填写手机号或带区号的固定电话")
    if len(s) == 11 and s.startswith("1") and not _MOBILE.fullmatch(s):
        raise InvalidPhone("手机号码格式不正确")
    return s


def mask_phone(phone: str) -> str:
    """'13812345678' -> '138****5678'; shorter numbers keep their first 3 and last 4 digits."""
    s = _PHONE_CHARS.sub("", phone or "")
    if len(s) <= 7:
        return "*" * max(len(s) - 2, 0) + s[-2:]
    return s[:3] + "*" * (len(s) - 7) + s[-4:]


def mask_id_number(id_number: str) -> str:
    """'11010119900307123X' -> '1101**********123X' (region prefix and check digits only)."""
    s = (id_number or "").strip()
    if len(s) <= 8:
        return "*" * len(s)
    return s[:4] + "*" * (len(s) - 8) + s[-4:]


def mask_name(name: str) -> str:
    """'张三' -> '张*', '王小明' -> '王*明', '欧阳小明' -> '欧**明'."""
    s = (name or "").strip()
    if len(s) <= 1:
        return s
    if len(s) == 2:
        return s[0] + "*"
    return s[0] + "*" * (len(s) - 2) + s[-1]


def mask_text(text: str) -> str:
    """Mask any ID or mobile number inside free text (notes, audit details, log lines)."""
    text = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group()), text)
    return _MOBILE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)


def phone_factor(phone: str) -> str:
    """The second factor an applicant types: the last 4 digits of the phone given at acceptance."""
    return normalize_phone(phone)[-4:]


def new_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def hash_factor(factor: str, salt: str) -> str:
    return hashlib.scrypt(factor.strip().encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def verify_factor(factor: str, salt: str, expected_hash: str) -> bool:
    """Constant-time comparison, so timing does not reveal how many bytes matched."""
    return hmac.compare_digest(hash_factor(factor, salt), expected_hash)


def burn_factor_check() -> None:
    """Spend the time of one real check, so "no such case" and "wrong factor" look alike."""
    hash_factor("0000", "00" * SALT_BYTES)


def hash_token(token: str, salt: str) -> str:
    # Binding codes are random and long, so a fast keyed hash is enough (no brute force possible).
    return hmac.new(bytes.fromhex(salt), token.encode(), hashlib.sha256).hexdigest()


def verify_token(token: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token, salt), expected_hash)
