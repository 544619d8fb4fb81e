"""Personal data: masking for display and logs, and the keyed second factor.

The full phone number is never stored: a case keeps the masked form for display and a keyed hash of
its last 4 digits (the second factor the applicant types to see the case). Four digits are only
10,000 possibilities, so no hash stored next to them can be slow enough to matter: a stolen database
row is 10,000 tries from its factor whatever the cost per try. What protects it is a key kept out of
the database (FACTOR_SECRET, or a key file): HMAC-SHA256 over a per-case salt and the factor. Without
the key a stolen database gives nothing to try offline; online guesses meet the lockout
(models/lockout.py). Checking costs microseconds, where the scrypt used before cost ~12 ms of CPU per
lookup, the largest single cost of an update under load (bench/bench_load.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

# Hashes written before the keyed scheme (no "h1$" prefix): still checked, and replaced by a keyed
# hash after the applicant's next successful lookup (models/crud.py).
_LEGACY_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}
SALT_BYTES = 16
KEYED = "h1$"

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


class FactorKeyError(RuntimeError):
    """The factor key is missing, unreadable, or not the one the stored cases were hashed with."""


class FactorKey:
    """The secret behind every factor hash. Its id (a keyed digest, not the key) is stored in each
    hash, so a process started with another key is noticed at start-up instead of silently
    refusing every applicant."""

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise FactorKeyError("FACTOR_SECRET 太短：至少 16 个字符（建议 32 字节随机值）")
        self._secret = secret
        self.id = hmac.new(secret, b"yichuang factor key id", hashlib.sha256).hexdigest()[:8]

    def digest(self, factor: str, salt: str) -> str:
        mac = hmac.new(self._secret, bytes.fromhex(salt) + factor.strip().encode(), hashlib.sha256)
        return f"{KEYED}{self.id}${mac.hexdigest()}"


def load_factor_key(secret: str | None, key_file: Path) -> FactorKey:
    """FACTOR_SECRET when set (several machines must share it); otherwise the key file, created
    with a random key on first start (mode 0600). Two processes starting at once agree: only one
    creates the file, the other reads it."""
    if secret:
        return FactorKey(secret.encode())
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the creator may not have written it yet
            text = key_file.read_text(encoding="ascii").strip()
            if text:
                try:
                    return FactorKey(bytes.fromhex(text))
                except ValueError:
                    raise FactorKeyError(f"密钥文件 {key_file} 已损坏（应为十六进制）") from None
            time.sleep(0.02)
        raise FactorKeyError(f"密钥文件 {key_file} 是空的") from None
    except OSError as e:
        raise FactorKeyError(f"无法创建密钥文件 {key_file}：{e.strerror}") from e
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return FactorKey(bytes.fromhex(key))


_key: FactorKey | None = None


def use_factor_key(key: FactorKey) -> None:
    """Set once per process at start-up (bot/runtime.assemble), before any case is created."""
    global _key
    _key = key


def factor_key() -> FactorKey:
    if _key is None:
        raise FactorKeyError("factor key not configured: call use_factor_key() at start-up")
    return _key


def key_id_of(stored_hash: str) -> str | None:
    """The key id inside a keyed hash; None for a legacy scrypt hash."""
    if not stored_hash.startswith(KEYED):
        return None
    return stored_hash[len(KEYED) :].split("$", 1)[0]


def hash_factor(factor: str, salt: str) -> str:
    return factor_key().digest(factor, salt)


def is_legacy(stored_hash: str) -> bool:
    return not stored_hash.startswith(KEYED)


def verify_factor(factor: str, salt: str, expected_hash: str) -> bool:
    """Constant-time comparison, so timing does not reveal how many bytes matched."""
    if is_legacy(expected_hash):
        legacy = hashlib.scrypt(factor.strip().encode(), salt=bytes.fromhex(salt), **_LEGACY_SCRYPT).hex()
        return hmac.compare_digest(legacy, expected_hash)
    return hmac.compare_digest(hash_factor(factor, salt), expected_hash)


def hash_token(token: str, salt: str) -> str:
    # Binding codes are random and long, so a fast keyed hash is enough (no brute force possible).
    return hmac.new(bytes.fromhex(salt), token.encode(), hashlib.sha256).hexdigest()


def verify_token(token: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token, salt), expected_hash)
