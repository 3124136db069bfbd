"""Synthetic customer-store data for an Israeli contact centre: demos, importer tests, benchmarks.

Pure and deterministic: one ``random.Random(seed)`` and a caller-supplied ``now`` decide every
value, so the same arguments always give the same rows. Nothing here touches a database; the
only I/O is in ``write_csv`` and ``write_jsonl``.

``generate(n)`` makes ``n`` people and writes each of them into several sources the way real
systems would: billing knows everyone, each branch about half, the ticket system about a
third. The same person's phone is written differently per source (``050-123-4567``,
``+972 50 123 4567``, ``00972501234567``, ``972501234567``, ``0501234567``), a few names carry
a typo in one branch, some families share a landline (different first names and account
numbers), and about 1% of customer rows are deliberately bad (no id, a phone like ``12``, an
e-mail without ``@``) so importers have something to reject. Incidents and interactions
reference only the good customer rows of their own source; some incidents were opened in the
last few hours and some calls happened in the last day, relative to ``now``.

``iter_customer_rows`` is the cheap streaming variant for benchmarks: one source, one row per
person, no history.

Its size (~690 lines) is mostly data: the tables of names, streets, topics and the
variations the synthetic sources are made from.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "id", "name", "phone", "mobile", "email", "account_number", "language", "tier", "segment",
    "status", "date_of_birth", "updated_at")
INCIDENT_COLUMNS: tuple[str, ...] = (
    "id", "customer_id", "category", "status", "summary", "branch", "opened_at", "closed_at",
    "updated_at")
INTERACTION_COLUMNS: tuple[str, ...] = (
    "id", "customer_id", "channel", "direction", "queue", "agent", "started_at", "ended_at",
    "topic", "outcome", "resolved", "promised_action", "promised_due_at", "notes")
SOURCES: tuple[str, ...] = ("branch-tlv", "branch-haifa", "billing", "tickets")
INCIDENT_SOURCES: tuple[str, ...] = ("branch-tlv", "branch-haifa", "tickets")

MAX_PEOPLE = 2_000_000  # generate(): the unique-number pools below hold at least this many
MAX_STREAM_ROWS = 8_000_000  # iter_customer_rows(): numbers stay unique up to this many


@dataclass(frozen=True)
class DemoData:
    customers: dict[str, list[dict[str, str]]]  # source name -> customer rows
    incidents: dict[str, list[dict[str, str]]]  # source name -> incident rows
    interactions: dict[str, list[dict[str, str]]]  # source name -> interaction rows
    people: int  # how many real people were generated


# --- names --------------------------------------------------------------------------------------

Name = tuple[str, str]  # (Hebrew, English)

_JEWISH_FEMALE: tuple[Name, ...] = (
    ("דנה", "Dana"), ("נועה", "Noa"), ("מיכל", "Michal"), ("שירה", "Shira"), ("תמר", "Tamar"),
    ("יעל", "Yael"), ("רותם", "Rotem"), ("הילה", "Hila"), ("מאיה", "Maya"), ("אורית", "Orit"),
    ("רחל", "Rachel"), ("שרה", "Sarah"), ("לאה", "Leah"), ("רבקה", "Rivka"), ("אסתר", "Esther"),
    ("אביגיל", "Avigail"), ("טליה", "Talia"), ("ליאת", "Liat"), ("קרן", "Keren"),
    ("ענבל", "Inbal"), ("סיגל", "Sigal"), ("אפרת", "Efrat"), ("גלית", "Galit"), ("חן", "Chen"),
    ("עדי", "Adi"), ("נטע", "Neta"), ("הדס", "Hadas"), ("אילנה", "Ilana"), ("רונית", "Ronit"),
    ("שני", "Shani"), ("יסמין", "Yasmin"), ("מרים", "Miriam"), ("חנה", "Hana"), ("אלה", "Ella"),
    ("עינב", "Einav"),
)
_JEWISH_MALE: tuple[Name, ...] = (
    ("משה", "Moshe"), ("דוד", "David"), ("יוסי", "Yossi"), ("אבי", "Avi"), ("איתי", "Itai"),
    ("עומר", "Omer"), ("יונתן", "Yonatan"), ("דניאל", "Daniel"), ("אורי", "Uri"),
    ("אלון", "Alon"), ("גיא", "Guy"), ("רון", "Ron"), ("עידו", "Ido"), ("נדב", "Nadav"),
    ("אריאל", "Ariel"), ("יואב", "Yoav"), ("אמיר", "Amir"), ("שי", "Shai"), ("עמית", "Amit"),
    ("ניר", "Nir"), ("אייל", "Eyal"), ("יוסף", "Yosef"), ("אברהם", "Avraham"),
    ("יעקב", "Yaakov"), ("חיים", "Haim"), ("שמואל", "Shmuel"), ("בועז", "Boaz"),
    ("גלעד", "Gilad"), ("רועי", "Roy"), ("תומר", "Tomer"), ("אסף", "Asaf"), ("מתן", "Matan"),
    ("איתן", "Eitan"), ("אליהו", "Eliyahu"), ("מיכאל", "Michael"),
)
_JEWISH_FAMILY: tuple[Name, ...] = (
    ("כהן", "Cohen"), ("לוי", "Levi"), ("מזרחי", "Mizrahi"), ("פרץ", "Peretz"),
    ("ביטון", "Biton"), ("דהן", "Dahan"), ("אברהם", "Avraham"), ("פרידמן", "Friedman"),
    ("אזולאי", "Azoulay"), ("מלכה", "Malka"), ("כץ", "Katz"), ("יוסף", "Yosef"),
    ("עמר", "Amar"), ("אוחיון", "Ohayon"), ("חדד", "Hadad"), ("גבאי", "Gabay"),
    ("בן דוד", "Ben David"), ("אדלר", "Adler"), ("שפירא", "Shapira"),
    ("רוזנברג", "Rosenberg"), ("גולדברג", "Goldberg"), ("שלום", "Shalom"), ("ששון", "Sasson"),
    ("ברק", "Barak"), ("שטרן", "Stern"), ("וייס", "Weiss"), ("קליין", "Klein"), ("טל", "Tal"),
    ("אשכנזי", "Ashkenazi"), ("סויסה", "Swissa"), ("וקנין", "Vaknin"), ("חזן", "Hazan"),
    ("נחום", "Nahum"), ("בכר", "Bachar"), ("חסון", "Hasson"), ("רביבו", "Revivo"),
    ("בן חיים", "Ben Haim"), ("גרינברג", "Greenberg"), ("לנדאו", "Landau"),
    ("הורוביץ", "Horowitz"), ("זילברמן", "Silberman"), ("קפלן", "Kaplan"),
)
_ARAB_FEMALE: tuple[Name, ...] = (
    ("פאטמה", "Fatima"), ("נור", "Nour"), ("לילא", "Layla"), ("רנין", "Ranin"),
    ("סמאח", "Samah"), ("מונא", "Muna"), ("היבה", "Hiba"), ("אמל", "Amal"),
)
_ARAB_MALE: tuple[Name, ...] = (
    ("מוחמד", "Mohammed"), ("אחמד", "Ahmad"), ("עלי", "Ali"), ("סמיר", "Samir"),
    ("חאלד", "Khaled"), ("יוסף", "Youssef"), ("כרים", "Karim"), ("עומר", "Omar"),
)
_ARAB_FAMILY: tuple[Name, ...] = (
    ("חיג'אזי", "Hijazi"), ("עבאס", "Abbas"), ("חורי", "Khoury"), ("מנסור", "Mansour"),
    ("סעדי", "Saadi"), ("נסאר", "Nassar"), ("עודה", "Odeh"), ("זועבי", "Zoabi"),
    ("מסארווה", "Masarwa"), ("בשארה", "Bishara"),
)
_RUSSIAN_FEMALE: tuple[Name, ...] = (
    ("אולגה", "Olga"), ("נטליה", "Natalia"), ("אירינה", "Irina"), ("סבטלנה", "Svetlana"),
    ("יוליה", "Yulia"), ("אנה", "Anna"),
)
_RUSSIAN_MALE: tuple[Name, ...] = (
    ("איגור", "Igor"), ("דמיטרי", "Dmitri"), ("סרגיי", "Sergei"), ("ולדימיר", "Vladimir"),
    ("אלכסנדר", "Alexander"), ("בוריס", "Boris"),
)
_RUSSIAN_FAMILY: tuple[Name, ...] = (
    ("איבנוב", "Ivanov"), ("פטרוב", "Petrov"), ("סמירנוב", "Smirnov"), ("קוזלוב", "Kozlov"),
    ("פופוב", "Popov"), ("וולקוב", "Volkov"), ("מורוזוב", "Morozov"),
)
# (female first names, male first names, family names, weight)
_GROUPS: tuple[tuple[tuple[Name, ...], tuple[Name, ...], tuple[Name, ...], float], ...] = (
    (_JEWISH_FEMALE, _JEWISH_MALE, _JEWISH_FAMILY, 0.80),
    (_ARAB_FEMALE, _ARAB_MALE, _ARAB_FAMILY, 0.13),
    (_RUSSIAN_FEMALE, _RUSSIAN_MALE, _RUSSIAN_FAMILY, 0.07),
)
_GROUP_CUTS: tuple[float, ...] = tuple(
    sum(g[3] for g in _GROUPS[: i + 1]) for i in range(len(_GROUPS)))

HEBREW_SHARE = 0.6  # people whose name the sources hold in Hebrew
_HEBREW_LETTERS = "אבגדהוזחטיכלמנסעפצקרשת"
_ENGLISH_LETTERS = "abcdefghijklmnoprstuvyz"

_DOMAINS: tuple[str, ...] = (
    ("gmail.com",) * 8 + ("walla.co.il",) * 3 + ("yahoo.com",) * 2 + ("hotmail.com",) * 2
    + ("bezeqint.net",) * 2 + ("outlook.com",) * 2 + ("012.net.il",))

_AGENTS: tuple[str, ...] = (
    "Noa Peretz", "Omer Levi", "Shira Azoulay", "Yossi Biton", "Maya Katz", "Itai Shalom",
    "Rinat Cohen", "Samir Abbas", "Olga Ivanov", "Gilad Barak", "Hila Mizrahi", "Ron Dahan",
    "Tamar Friedman", "Amir Hadad", "Nour Khoury", "Eyal Stern",
)

# --- phones -------------------------------------------------------------------------------------

_MOBILE_PREFIXES: tuple[str, ...] = ("50", "52", "53", "54", "58", "50", "52", "54")
# Written formats: 0 "050-123-4567", 1 "+972 50 123 4567", 2 "00972501234567",
# 3 "972501234567", 4 "0501234567". Each source leans to its own; weighted as lists.
_FORMATS: dict[str, tuple[int, ...]] = {
    "billing": (1, 1, 1, 1, 1, 1, 3, 3, 0, 4),
    "branch-tlv": (0, 0, 0, 0, 0, 0, 0, 4, 4, 4),
    "branch-haifa": (4, 4, 4, 4, 4, 4, 2, 2, 2, 0),
    "tickets": (3, 3, 3, 3, 1, 1, 0, 0, 2, 2),
}
_BAD_PHONES: tuple[str, ...] = ("12", "123", "1234", "n/a", "0000", "050", "-")


def format_phone(nsn: str, style: int) -> str:
    """An Israeli national significant number (``501234567``, ``35551234``) written one way."""
    cut = 2 if nsn[0] == "5" else 1
    area, sub = nsn[:cut], nsn[cut:]
    if style == 0:
        return f"0{area}-{sub[:3]}-{sub[3:]}"
    if style == 1:
        return f"+972 {area} {sub[:3]} {sub[3:]}"
    if style == 2:
        return "00972" + nsn
    if style == 3:
        return "972" + nsn
    return "0" + nsn


# --- per-source layout --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    customer_prefix: str
    width: int
    account: float  # share of rows carrying the account number
    email: float  # share of rows carrying the person's e-mail (if they have one)
    dob: float  # likewise the date of birth
    blank_language: float
    max_age_days: int  # how old updated_at may be


_LAYOUTS: dict[str, _Layout] = {
    "branch-tlv": _Layout("TLV-", 6, 0.6, 0.7, 0.6, 0.15, 730),
    "branch-haifa": _Layout("HFA-", 6, 0.55, 0.65, 0.5, 0.2, 730),
    "billing": _Layout("B-", 7, 1.0, 0.95, 0.95, 0.0, 30),
    "tickets": _Layout("T-", 6, 0.3, 0.9, 0.2, 0.25, 365),
}
_INCIDENT_PREFIX = {"branch-tlv": "TLV-INC-", "branch-haifa": "HFA-INC-", "tickets": "T-INC-"}
_INCIDENT_BRANCH = {"branch-tlv": "tlv", "branch-haifa": "haifa"}
_INTERACTION_PREFIX = {"branch-tlv": "TLV-CALL-", "branch-haifa": "HFA-CALL-",
                       "billing": "B-CALL-", "tickets": "T-ACT-"}

# --- incidents and interactions ------------------------------------------------------------------

# category -> ((Hebrew summary, English summary), ...)
_INCIDENTS: dict[str, tuple[Name, ...]] = {
    "internet-down": (("אין גלישה מאז הבוקר", "No internet since this morning"),
                      ("האינטרנט מתנתק כל כמה דקות", "Internet drops every few minutes")),
    "router-fault": (("הנתב מהבהב באדום", "Router light blinking red"),
                     ("הנתב לא נדלק", "Router does not power on")),
    "tv-no-signal": (("אין קליטה בממיר", "No signal on the TV box"),
                     ("ערוצי הספורט לא עובדים", "Sports channels not working")),
    "slow-internet": (("גלישה איטית בערבים", "Slow internet in the evenings"),),
    "phone-line": (("אין צליל חיוג בקו הביתי", "No dial tone on the home line"),),
    "billing-dispute": (("חיוב כפול בחשבונית האחרונה", "Charged twice on the last bill"),
                        ("חויב על חבילה שלא הוזמנה", "Billed for a package never ordered")),
}
_CATEGORIES: tuple[str, ...] = (
    ("internet-down",) * 4 + ("router-fault",) * 3 + ("tv-no-signal",) * 2
    + ("slow-internet",) * 2 + ("phone-line",) + ("billing-dispute",) * 3)

_TOPICS: dict[str, tuple[str, ...]] = {
    "support": ("internet-down", "router-fault", "tv-no-signal", "slow-internet", "phone-line"),
    "billing": ("billing-dispute", "payment", "refund", "bill-explanation"),
    "sales": ("upgrade", "new-line", "cancel", "retention"),
}
# queue -> ((outcome, resolved, (Hebrew promise, English promise) or None, due in hours), ...)
_Outcome = tuple[str, bool, Name | None, int]
_OUTCOMES: dict[str, tuple[_Outcome, ...]] = {
    "support": (
        ("resolved-on-call", True, None, 0),
        ("resolved-on-call", True, None, 0),
        ("technician-booked", False, ("ביקור טכנאי", "Technician visit"), 30),
        ("callback-scheduled", False, ("לחזור ללקוח לבדוק שהתקלה נפתרה",
                                       "Call back to check the fault is fixed"), 4),
        ("escalated", False, ("צוות תמיכה דרג 2 יחזור ללקוח", "Tier-2 support to call back"), 24),
    ),
    "billing": (
        ("explained-bill", True, None, 0),
        ("credit-issued", True, ("זיכוי בחשבונית הבאה", "Credit on the next bill"), 720),
        ("payment-arranged", True, None, 0),
        ("escalated", False, ("מחלקת גבייה תחזור ללקוח", "Collections to call back"), 48),
    ),
    "sales": (
        ("upgraded", True, None, 0),
        ("offer-sent", False, ("לשלוח הצעה במייל", "Send the offer by e-mail"), 24),
        ("retention-offer", False, ("לחזור עם הצעת שימור", "Call back with a retention offer"),
         48),
        ("cancelled", True, None, 0),
    ),
}
_NOTES: dict[str, Name] = {
    "resolved-on-call": ("בוצע איפוס מרחוק, הלקוח אישר שעובד", "Remote reset, customer confirmed"),
    "technician-booked": ("נקבע טכנאי, הלקוח יהיה בבית", "Technician booked, customer at home"),
    "callback-scheduled": ("הלקוח ביקש שיחזרו אליו", "Customer asked for a call back"),
    "escalated": ("הועבר לטיפול דרג 2", "Passed to tier 2"),
    "explained-bill": ("הוסבר פירוט החשבונית", "Went through the bill with the customer"),
    "credit-issued": ("אושר זיכוי", "Credit approved"),
    "payment-arranged": ("סוכם על הסדר תשלומים", "Payment plan agreed"),
    "upgraded": ("שודרג לחבילה מהירה יותר", "Upgraded to a faster plan"),
    "offer-sent": ("הלקוח מתעניין, נשלחה הצעה", "Customer interested, offer sent"),
    "retention-offer": ("הלקוח שוקל לעזוב", "Customer thinking of leaving"),
    "cancelled": ("השירות בוטל לבקשת הלקוח", "Service cancelled at customer's request"),
}
# source -> weighted (channel, direction) and queue choices
_CHANNELS: dict[str, tuple[tuple[str, str], ...]] = {
    "branch-tlv": (("call", "in"),) * 6 + (("call", "out"), ("callback", "out"),
                                            ("callback", "out"), ("email", "in")),
    "branch-haifa": (("call", "in"),) * 6 + (("call", "out"), ("callback", "out"),
                                              ("callback", "out"), ("email", "in")),
    "billing": (("call", "in"),) * 7 + (("email", "in"), ("email", "out"), ("callback", "out")),
    "tickets": (("ticket", "in"),) * 7 + (("email", "in"), ("email", "out"), ("call", "in")),
}
_QUEUES: dict[str, tuple[str, ...]] = {
    "branch-tlv": ("support",) * 6 + ("billing",) * 2 + ("sales",) * 2,
    "branch-haifa": ("support",) * 6 + ("billing",) * 2 + ("sales",) * 2,
    "billing": ("billing",) * 8 + ("sales",) * 2,
    "tickets": ("support",) * 8 + ("billing",) * 2,
}

_TIERS: tuple[str, ...] = ("standard",) * 7 + ("premium",) * 2 + ("business",)
_STATUSES: tuple[str, ...] = ("active",) * 90 + ("leaving",) * 6 + ("left",) * 4
_DAY = 86_400


@dataclass(slots=True)
class _Person:
    hebrew: bool
    group: int
    female: bool
    first: int
    family: int
    region: str  # tlv / haifa / other
    mobile: str  # national significant number, or "" (landline only)
    landline: str  # likewise, or "" (no landline)
    spare: str  # a landline number reserved for this person, used if they get one later
    account: str
    email: str = ""
    language: str = ""
    tier: str = ""
    segment: str = ""
    status: str = ""
    dob: str = ""

    def names(self) -> tuple[Name, Name]:
        female, male, family, _ = _GROUPS[self.group]
        return (female if self.female else male)[self.first], family[self.family]

    def name(self) -> str:
        first, family = self.names()
        i = 0 if self.hebrew else 1
        return f"{first[i]} {family[i]}"


def _aware_utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def _check_count(customers: int, limit: int) -> None:
    if not 0 <= customers <= limit:
        raise ValueError(f"customers must be between 0 and {limit}, not {customers}")


def _iso(now: datetime, seconds_ago: float) -> str:
    return (now - timedelta(seconds=int(seconds_ago))).isoformat()


def _typo(name: str, rng: random.Random) -> str:
    """The name with one letter changed or dropped (never a space, never the same name)."""
    letters = [i for i, ch in enumerate(name) if not ch.isspace()]
    alphabet = _HEBREW_LETTERS if any("\u0590" <= ch <= "\u05ff" for ch in name) \
        else _ENGLISH_LETTERS
    for _ in range(10):
        pos = rng.choice(letters[1:] or letters)  # keep the first letter: typos are mid-word
        if rng.random() < 0.5 and len(letters) > 3:
            out = name[:pos] + name[pos + 1:]
        else:
            new = rng.choice(alphabet)
            if name[pos].isupper():
                new = new.upper()
            out = name[:pos] + new + name[pos + 1:]
        if out != name and "  " not in out:
            return out
    return name + alphabet[0]


def _people(n: int, rng: random.Random, now: datetime) -> list[_Person]:
    mobiles = rng.sample(range(10_000_000), n)
    landlines = rng.sample(range(2_000_000, 10_000_000), n)
    accounts = rng.sample(range(100_000, 10_000_000), n)
    people: list[_Person] = []
    today = now.date()
    for i in range(n):
        r = rng.random()
        group = next(g for g, cut in enumerate(_GROUP_CUTS) if r < cut or g == len(_GROUPS) - 1)
        female = rng.random() < 0.5
        firsts = _GROUPS[group][0] if female else _GROUPS[group][1]
        r = rng.random()
        region = "tlv" if r < 0.45 else "haifa" if r < 0.8 else "other"
        has_landline = rng.random() < 0.35
        landline_only = has_landline and rng.random() < 0.1
        area = {"tlv": "3" if rng.random() < 0.8 else "9", "haifa": "4",
                "other": "2" if rng.random() < 0.5 else "8"}[region]
        person = _Person(
            hebrew=rng.random() < HEBREW_SHARE, group=group, female=female,
            first=rng.randrange(len(firsts)), family=rng.randrange(len(_GROUPS[group][2])),
            region=region,
            mobile="" if landline_only else f"{rng.choice(_MOBILE_PREFIXES)}{mobiles[i]:07d}",
            landline=f"{area}{landlines[i]:07d}" if has_landline else "",
            spare=f"{area}{landlines[i]:07d}",
            account=str(accounts[i]),
        )
        person.language = "he-IL" if person.hebrew or rng.random() < 0.15 else "en-US"
        person.tier = rng.choice(_TIERS)
        person.segment = "smb" if person.tier == "business" or rng.random() < 0.05 \
            else "consumer"
        person.status = rng.choice(_STATUSES)
        if rng.random() < 0.85:
            person.dob = (today - timedelta(days=rng.randrange(18 * 365, 90 * 365))).isoformat()
        people.append(person)
    _share_landlines(people, rng)
    _emails(people, rng)
    return people


def _share_landlines(people: list[_Person], rng: random.Random) -> None:
    """About 2% of people: pairs of one family (same family name, different first names and
    account numbers) behind one home landline."""
    pairs = len(people) // 100
    chosen = rng.sample(range(len(people)), 2 * pairs)
    for a, b in zip(chosen[::2], chosen[1::2], strict=True):
        head, other = people[a], people[b]
        head.landline = head.landline or head.spare
        other.group, other.family, other.hebrew = head.group, head.family, head.hebrew
        other.region = head.region
        firsts = _GROUPS[other.group][0] if other.female else _GROUPS[other.group][1]
        other.first = rng.randrange(len(firsts))
        if other.female == head.female and other.first == head.first:
            other.first = (other.first + 1 + rng.randrange(len(firsts) - 1)) % len(firsts)
        other.landline = head.landline
        if other.hebrew:
            other.language = "he-IL"


def _emails(people: list[_Person], rng: random.Random) -> None:
    used: dict[str, int] = {}
    for person in people:
        if rng.random() >= 0.8:
            continue
        first, family = (n[1].lower().replace(" ", "") for n in person.names())
        style = rng.random()
        handle = (f"{first}.{family}" if style < 0.5 else f"{first}{family}" if style < 0.7
                  else f"{first[0]}{family}" if style < 0.85 else f"{first}_{family}")
        seen = used.get(handle, 0)
        used[handle] = seen + 1
        if seen:
            handle = f"{handle}{seen + 1}"
        person.email = f"{handle}@{rng.choice(_DOMAINS)}"


def _customer_row(person: _Person, source: str, row_id: str, rng: random.Random,
                  now: datetime, typo: bool) -> dict[str, str]:
    layout = _LAYOUTS[source]
    styles = _FORMATS[source]
    mobile = format_phone(person.mobile, rng.choice(styles)) if person.mobile else ""
    landline = format_phone(person.landline, rng.choice(styles)) if person.landline else ""
    phone = landline or mobile
    if source == "tickets" and not landline and rng.random() < 0.5:
        mobile = ""  # the ticket form has one phone box
    name = person.name()
    if typo:
        name = _typo(name, rng)
    email = person.email if rng.random() < layout.email else ""
    if email and source == "tickets" and rng.random() < 0.1:
        email = email.capitalize()
    tier, status = person.tier, person.status
    if source != "billing":
        if rng.random() < 0.05:
            tier = rng.choice(_TIERS)  # stale: billing has the current tier
        if status != "active" and rng.random() < 0.3:
            status = "active"  # the branch has not heard yet
    return {
        "id": row_id,
        "name": name,
        "phone": phone,
        "mobile": mobile,
        "email": email,
        "account_number": person.account if rng.random() < layout.account else "",
        "language": "" if rng.random() < layout.blank_language else person.language,
        "tier": tier,
        "segment": person.segment,
        "status": status,
        "date_of_birth": person.dob if rng.random() < layout.dob else "",
        "updated_at": _iso(now, rng.uniform(300, layout.max_age_days * _DAY)),
    }


def _spoil(row: dict[str, str], rng: random.Random) -> None:
    """Make a row one an importer must reject: no id, a phone that is no number, a bad e-mail."""
    kind = rng.randrange(3)
    if kind == 0:
        row["id"] = ""
    elif kind == 1:
        row["phone"] = rng.choice(_BAD_PHONES)
    else:
        local = row["email"].split("@")[0] if row["email"] else "customer"
        row["email"] = f"{local}.{rng.choice(_DOMAINS)}"  # the @ never made it


def _membership(person: _Person, rng: random.Random) -> list[str]:
    near = {"tlv": (0.85, 0.15), "haifa": (0.15, 0.85)}.get(person.region, (0.4, 0.4))
    sources = []
    if rng.random() < near[0]:
        sources.append("branch-tlv")
    if rng.random() < near[1]:
        sources.append("branch-haifa")
    sources.append("billing")
    if rng.random() < 0.3:
        sources.append("tickets")
    return sources


def _incident(source: str, number: int, customer_id: str, hebrew: bool,
              rng: random.Random, now: datetime) -> dict[str, str]:
    category = rng.choice(_CATEGORIES)
    summary = rng.choice(_INCIDENTS[category])[0 if hebrew else 1]
    branch = _INCIDENT_BRANCH.get(source, "")
    if not branch and rng.random() < 0.3:
        branch = rng.choice(("tlv", "haifa"))
    if rng.random() < 0.25:
        status = "open"
        # Some opened in the last few hours: "your open fault from an hour ago".
        age = rng.uniform(600, 6 * 3600) if rng.random() < 0.4 else rng.uniform(6, 240) * 3600
        opened, closed = age, None
        updated = rng.uniform(60, age)
    else:
        status = "closed"
        took = rng.uniform(0.5, 168) * 3600
        closed = rng.uniform(3600, 400 * _DAY)
        opened = closed + took
        updated = closed - rng.uniform(0, 600)
    return {
        "id": f"{_INCIDENT_PREFIX[source]}{number:07d}",
        "customer_id": customer_id,
        "category": category,
        "status": status,
        "summary": summary,
        "branch": branch,
        "opened_at": _iso(now, opened),
        "closed_at": "" if closed is None else _iso(now, closed),
        "updated_at": _iso(now, max(0.0, updated)),
    }


def _interaction(source: str, number: int, customer_id: str, hebrew: bool,
                 rng: random.Random, now: datetime, *, topic: str | None = None,
                 ago: float | None = None) -> dict[str, str]:
    channel, direction = rng.choice(_CHANNELS[source])
    queue = (next(q for q, topics in _TOPICS.items() if topic in topics) if topic
             else rng.choice(_QUEUES[source]))
    topic = topic or rng.choice(_TOPICS[queue])
    outcome, resolved, promise, due_hours = rng.choice(_OUTCOMES[queue])
    if ago is None:
        ago = rng.uniform(300, _DAY) if rng.random() < 0.12 else rng.uniform(_DAY, 180 * _DAY)
    if channel in ("call", "callback"):
        ends: float | None = max(0.0, ago - rng.uniform(60, 1800))
    else:
        ends = max(0.0, ago - rng.uniform(600, 2 * _DAY)) if resolved else None
    started = now - timedelta(seconds=int(ago))
    notes = _NOTES[outcome][0 if hebrew else 1]
    return {
        "id": f"{_INTERACTION_PREFIX[source]}{number:07d}",
        "customer_id": customer_id,
        "channel": channel,
        "direction": direction,
        "queue": queue,
        "agent": rng.choice(_AGENTS),
        "started_at": started.isoformat(),
        "ended_at": "" if ends is None else _iso(now, ends),
        "topic": topic,
        "outcome": outcome,
        "resolved": "true" if resolved else "false",
        "promised_action": promise[0 if hebrew else 1] if promise else "",
        "promised_due_at": (started + timedelta(hours=due_hours)).isoformat() if promise else "",
        "notes": notes,
    }


def generate(customers: int, *, seed: int = 7, now: datetime) -> DemoData:
    """``customers`` people spread over ``SOURCES``, with their incidents and interactions."""
    _check_count(customers, MAX_PEOPLE)
    now = _aware_utc(now)
    rng = random.Random(seed)
    people = _people(customers, rng, now)

    rows: dict[str, list[dict[str, str]]] = {s: [] for s in SOURCES}
    good: dict[str, list[tuple[str, _Person]]] = {s: [] for s in SOURCES}
    next_id = {s: rng.randrange(1, 500) for s in SOURCES}
    for person in people:
        sources = _membership(person, rng)
        branches = [s for s in sources if s.startswith("branch-")]
        typo_in = rng.choice(branches) if branches and rng.random() < 0.03 else None
        for source in sources:
            layout = _LAYOUTS[source]
            row_id = f"{layout.customer_prefix}{next_id[source]:0{layout.width}d}"
            next_id[source] += rng.choice((1, 1, 1, 2, 3))
            row = _customer_row(person, source, row_id, rng, now, typo=source == typo_in)
            if rng.random() < 0.01:
                _spoil(row, rng)
            else:
                good[source].append((row_id, person))
            rows[source].append(row)

    incidents: dict[str, list[dict[str, str]]] = {s: [] for s in INCIDENT_SOURCES}
    interactions: dict[str, list[dict[str, str]]] = {s: [] for s in SOURCES}
    for source in SOURCES:
        inc, act = incidents.get(source), interactions[source]
        for row_id, person in good[source]:
            if inc is not None:
                count = (int(rng.random() < 0.85) + int(rng.random() < 0.25)
                         if source == "tickets" else int(rng.random() < 0.15))
                for _ in range(count):
                    incident = _incident(source, len(inc) + 1, row_id, person.hebrew, rng, now)
                    inc.append(incident)
                    if incident["status"] == "open" and rng.random() < 0.6:
                        # The customer called about it since it was opened.
                        opened = datetime.fromisoformat(incident["opened_at"])
                        ago = rng.uniform(0, (now - opened).total_seconds())
                        act.append(_interaction(source, len(act) + 1, row_id, person.hebrew,
                                                rng, now, topic=incident["category"], ago=ago))
            for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
                act.append(_interaction(source, len(act) + 1, row_id, person.hebrew, rng, now))
    return DemoData(customers=rows, incidents=incidents, interactions=interactions,
                    people=customers)


# --- streaming ----------------------------------------------------------------------------------

_STREAM_NAMES: tuple[tuple[str, str, str], ...] = tuple(
    (f"{f[0]} {s[0]}", f"{f[1]} {s[1]}", f"{f[1]}.{s[1]}".lower().replace(" ", ""))
    for female, male, family, _ in _GROUPS for f in (*female, *male) for s in family)
_STREAM_LANGUAGES: tuple[str, ...] = ("he-IL",) * 6 + ("en-US",) * 3 + ("",)
_STREAM_SEGMENTS: tuple[str, ...] = ("consumer",) * 9 + ("smb",)
_STREAM_AREAS: tuple[str, ...] = ("2", "3", "3", "3", "4", "4", "8", "9")


def iter_customer_rows(customers: int, *, seed: int = 7, now: datetime,
                       source: str = "billing") -> Iterator[dict[str, str]]:
    """Exactly ``customers`` customer rows of one source, one per person, ids unique.

    Cheap per row (benchmarks): names, dates and timestamps come from pools built once;
    mobiles, landlines and account numbers are unique by construction (an affine map of the
    row number), not by remembering what was used.
    """
    _check_count(customers, MAX_STREAM_ROWS)
    if source not in _LAYOUTS:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    now = _aware_utc(now)
    rng = random.Random(seed)
    layout = _LAYOUTS[source]
    styles = _FORMATS[source]
    today = now.date()
    updated = tuple(_iso(now, rng.uniform(300, layout.max_age_days * _DAY)) for _ in range(4096))
    dobs = tuple((today - timedelta(days=rng.randrange(18 * 365, 90 * 365))).isoformat()
                 if rng.random() < 0.85 * layout.dob else "" for _ in range(1024))
    names, n_names = _STREAM_NAMES, len(_STREAM_NAMES)
    prefixes, n_prefixes = _MOBILE_PREFIXES, len(_MOBILE_PREFIXES)
    domains, n_domains = _DOMAINS, len(_DOMAINS)
    tiers, n_tiers = _TIERS, len(_TIERS)
    statuses, n_statuses = _STATUSES, len(_STATUSES)
    languages = _STREAM_LANGUAGES
    segments = _STREAM_SEGMENTS
    areas = _STREAM_AREAS
    id_prefix, width = layout.customer_prefix, layout.width
    start = rng.randrange(1, 500)
    # Unique numbers: (a * i + b) mod m is a bijection on range(m) when gcd(a, m) == 1.
    m_off, l_off, a_off = (rng.randrange(10_000_000), rng.randrange(8_000_000),
                           rng.randrange(9_900_000))
    email_share = 0.8 * layout.email
    account_share = layout.account
    rand = rng.random
    for i in range(customers):
        subscriber = (7_654_321 * i + m_off) % 10_000_000
        mobile_nsn = f"{prefixes[int(rand() * n_prefixes)]}{subscriber:07d}"
        mobile = format_phone(mobile_nsn, styles[int(rand() * 10)])
        if rand() < 0.3:
            landline_nsn = (f"{areas[int(rand() * 8)]}"
                            f"{2_000_000 + (3_141_593 * i + l_off) % 8_000_000}")
            phone = format_phone(landline_nsn, styles[int(rand() * 10)])
        else:
            phone = mobile
        he, en, handle = names[int(rand() * n_names)]
        hebrew = rand() < HEBREW_SHARE
        tier = tiers[int(rand() * n_tiers)]
        yield {
            "id": f"{id_prefix}{start + i:0{width}d}",
            "name": he if hebrew else en,
            "phone": phone,
            "mobile": mobile,
            "email": f"{handle}{i}@{domains[int(rand() * n_domains)]}"
            if rand() < email_share else "",
            "account_number": str(100_000 + (7_919 * i + a_off) % 9_900_000)
            if rand() < account_share else "",
            "language": ("he-IL" if hebrew else languages[int(rand() * 10)]),
            "tier": tier,
            "segment": "smb" if tier == "business" else segments[int(rand() * 10)],
            "status": statuses[int(rand() * n_statuses)],
            "date_of_birth": dobs[int(rand() * 1024)],
            "updated_at": updated[int(rand() * 4096)],
        }


# --- files --------------------------------------------------------------------------------------

def write_csv(path: Path, rows: Iterable[dict[str, str]], columns: Sequence[str]) -> int:
    """Rows as UTF-8 CSV, header line first; returns how many rows were written."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def write_jsonl(path: Path, rows: Iterable[dict[str, str]]) -> int:
    """One JSON object per line, UTF-8 (Hebrew kept as is); returns how many rows."""
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count
