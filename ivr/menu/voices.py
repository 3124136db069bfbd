"""Which language each Twilio <Say> voice can speak.

Google voices carry their language in the name (``Google.he-IL-Standard-A``); Amazon Polly
voices are listed here (Polly has no Hebrew voice, so Hebrew prompts need a Google one).
"""

from __future__ import annotations

_POLLY: dict[str, str] = {
    # en-US
    **dict.fromkeys(
        ["Joanna", "Matthew", "Ivy", "Justin", "Kendra", "Kimberly", "Salli", "Joey", "Kevin",
         "Ruth", "Stephen", "Danielle", "Gregory", "Patrick"], "en-US"),
    **dict.fromkeys(["Amy", "Brian", "Emma", "Arthur"], "en-GB"),
    **dict.fromkeys(["Nicole", "Russell", "Olivia"], "en-AU"),
    **dict.fromkeys(["Aditi", "Raveena", "Kajal"], "en-IN"),
    **dict.fromkeys(["Conchita", "Enrique", "Lucia", "Sergio"], "es-ES"),
    **dict.fromkeys(["Lupe", "Penelope", "Miguel", "Pedro"], "es-US"),
    **dict.fromkeys(["Celine", "Mathieu", "Lea", "Remi"], "fr-FR"),
    **dict.fromkeys(["Marlene", "Hans", "Vicki", "Daniel"], "de-DE"),
    **dict.fromkeys(["Carla", "Giorgio", "Bianca", "Adriano"], "it-IT"),
    **dict.fromkeys(["Tatyana", "Maxim"], "ru-RU"),
    **dict.fromkeys(["Zeina"], "arb"),
    **dict.fromkeys(["Hala", "Zayd"], "ar-AE"),
}

_BASIC = {"man": {"en-US", "en-GB", "es-ES", "fr-FR", "de-DE"},
          "woman": {"en-US", "en-GB", "es-ES", "fr-FR", "de-DE"}}


def voice_languages(voice: str) -> set[str] | None:
    """The languages a voice speaks, or None when the voice is not known here."""
    if voice in _BASIC:
        return _BASIC[voice]
    vendor, _, rest = voice.partition(".")
    if vendor == "Google" and len(rest) >= 5 and rest[2] == "-":
        return {rest[:5]}
    if vendor == "Polly":
        base = rest.split("-")[0]
        lang = _POLLY.get(base)
        return {lang} if lang else None
    return None
