"""The interface in the centre's languages (Hebrew right to left, English): catalogs and
``text(lang, key, **params)`` for pages the server renders; ``ivr/agents/static/i18n.js``
gives the console the same words through ``t(key, params)``."""

from ivr.i18n.catalog import (
    LANGUAGES,
    NAMES,
    Catalog,
    CatalogError,
    Language,
    catalog,
    direction,
    language,
    locale_tag,
    plural_category,
    text,
)

__all__ = ["LANGUAGES", "NAMES", "Catalog", "CatalogError", "Language", "catalog",
           "direction", "language", "locale_tag", "plural_category", "text"]
