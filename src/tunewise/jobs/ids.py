"""Public object ids: a prefix OpenAI uses for the kind (`file-`, `ftjob-`, ...) and random letters.

Ids are made here, never taken from a request, and `is_id` checks one before it is used to build
a storage key, so no id from a URL ever reaches a filesystem path unchecked.
"""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_ID = re.compile(r"^[a-z_-]{2,12}[A-Za-z0-9]{8,40}$")

FILE = "file-"
JOB = "ftjob-"
EVENT = "ftevent-"
CHECKPOINT = "ftckpt-"
UPLOAD = "upload_"
PART = "part_"
KEY = "key_"
TRIGGER = "trig_"
DELIVERY = "whd_"


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + random_token(length)


def is_id(value: str, prefix: str) -> bool:
    """True for an id of the given kind (prefix plus 8-40 letters and digits)."""
    return value.startswith(prefix) and bool(_ID.match(value)) and value[len(prefix):].isalnum()
