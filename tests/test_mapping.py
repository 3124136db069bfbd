"""Per-source field mappings: rows from different systems become comparable records, and
rows that cannot are rejected with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from crm_sync.identity import SourceRecord
from crm_sync.mapping import FieldSpec, Rejection, SourceMapping, map_record

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BRANCH = SourceMapping(
    source="branch-tlv", id="cust_no", name=["first", "last"], phones=["mobile", "home"],
    emails=["mail"], account_number="acct",
    preferred_language=FieldSpec(field="lang", map={"HE": "he-IL", "EN": "en-US"}),
    tier=FieldSpec(field="level", map={"gold": "premium"}),
    date_of_birth=FieldSpec(field="dob", format="%d/%m/%Y"),
    seen_at=FieldSpec(field="updated", format="%d/%m/%Y %H:%M", timezone="Asia/Jerusalem"),
)
ROW = {"cust_no": "17", "first": "דנה", "last": "כהן", "mobile": "050-123-4567",
       "home": "03-555-1234", "mail": " Dana@Example.COM ", "acct": "100200", "lang": "HE",
       "level": "gold", "dob": "01/02/1980", "updated": "22/11/2026 18:30"}


def test_a_branch_row_becomes_a_source_record() -> None:
    assert map_record(ROW, BRANCH, "IL", NOW) == SourceRecord(
        source="branch-tlv", external_id="17",
        seen_at=datetime(2026, 11, 22, 18, 30, tzinfo=ZoneInfo("Asia/Jerusalem")),
        name="דנה כהן", phones=("+972501234567", "+97235551234"),
        emails=("dana@example.com",), account_number="100200", preferred_language="he-IL",
        tier="premium", date_of_birth=date(1980, 2, 1))


@pytest.mark.parametrize(("change", "reason"), [
    ({"cust_no": ""}, "missing id (column 'cust_no')"),
    ({"mobile": "12345"}, "bad phone in 'mobile': too short for a phone number: '12345'"),
    ({"mail": "dana.example.com"}, "bad e-mail in 'mail': 'dana.example.com'"),
    ({"dob": "1980-02-01"}, "bad date: time data '1980-02-01' does not match format "
                            "'%d/%m/%Y'"),
    ({"mobile": "", "home": "", "mail": "", "acct": ""},
     "no phone, e-mail or account number: nobody could find this customer"),
])
def test_rows_that_cannot_be_used_are_rejected_with_the_reason(change: dict[str, str],
                                                               reason: str) -> None:
    assert map_record({**ROW, **change}, BRANCH, "IL", NOW) == Rejection(reason)


def test_missing_optional_fields_and_no_timestamp() -> None:
    billing = SourceMapping(source="billing", id="id", phones=["phone"])
    record = map_record({"id": "B1", "phone": "+972 50 123 4567"}, billing, "IL", NOW)
    assert isinstance(record, SourceRecord)
    assert (record.phones, record.name, record.seen_at) == (("+972501234567",), None, NOW)
