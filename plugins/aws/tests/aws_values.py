"""Distinctive credentials the tests grep for (they must never show up anywhere)."""

KEY_ID = "AKIAQDISTINCTKEYID77"
SECRET = "sEcReT-Zq8vN3-distinctive-secret-9f1c"
TOKEN = "ToKeN-Xy7-distinctive-session-token-41aa"
