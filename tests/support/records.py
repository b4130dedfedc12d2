"""Contract records in tests: a valid transaction, and JSON as a producer sends it."""

from __future__ import annotations

import json

GOOD = {"txn_id": "t-1", "account_id": "acct-1", "merchant_id": "m-1", "amount_cents": 100,
        "currency": "USD", "kind": "purchase", "event_time_ms": 1767225600000,
        "channel": "web", "country": "US"}


def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
