// The console's words in the agent's language (issue 17.5). The catalogs are
// ivr/i18n/catalogs/*.json, served as /agent/i18n/messages.js (window.IVR_MESSAGES),
// which the page loads before this file; every script after it uses window.I18N:
//
//   const { t } = window.I18N;
//   t("console.sign_in")                      -> "Sign in" / "כניסה"
//   t("console.waiting", { count: 3 })        -> plural forms chosen by count
//   I18N.nodes("k", { name: someNode })       -> [text, node, text]: a Node parameter in place
//   I18N.lang                                 -> "he" or "en" (the current language)
//   I18N.locale                               -> "he-IL" / "en-IL": for Intl formats
//   I18N.onChange((lang) => redraw())         -> called after the language changes
//   <span data-i18n="console.sign_in">Sign in</span>   static text in the HTML
//   <input data-i18n-placeholder="key">, data-i18n-title, data-i18n-aria-label
"use strict";

(function () {
  const all = window.IVR_MESSAGES || { languages: {}, rtl: [], region: "", default: "en", messages: {} };
  const listeners = [];
  const state = { lang: all.default || "en" };
  // The last language this browser showed: the sign-in page (and a reload, before the
  // agent is known) speaks it rather than flashing the centre's first.
  const REMEMBERED = "ivr-console-language";
  const remembered = () => { try { return localStorage.getItem(REMEMBERED); } catch { return null; } };
  const plurals = {};

  function messages(lang) { return all.messages[lang] || {}; }

  function pluralOf(lang, count) {
    if (!plurals[lang]) {
      try { plurals[lang] = new Intl.PluralRules(lang); } catch { plurals[lang] = new Intl.PluralRules("en"); }
    }
    return plurals[lang].select(count);
  }

  /** The text of `key` in the current language (English where it lacks one), `{name}`
   *  placeholders filled from `params`. An unknown key shows as the key itself and is
   *  logged, so it is seen, never a blank. */
  function t(key, params) {
    let value = messages(state.lang)[key];
    if (value === undefined) value = messages("en")[key];
    if (value === undefined) {
      if (window.console) console.warn(`i18n: no text for ${key}`);
      return key;
    }
    if (typeof value === "object" && value !== null) {
      const count = params && typeof params.count === "number" ? params.count : NaN;
      value = value[pluralOf(state.lang, count)] ?? value.other;
    }
    return value.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name) =>
      (params && params[name] !== undefined && params[name] !== null ? String(params[name]) : whole));
  }

  /** The text of `key` as a list of strings and DOM nodes: a parameter that is a Node
   *  (a <strong>, a customer's name in its own direction) goes in where its placeholder is,
   *  so markup never passes through HTML parsing. For el(tag, attrs, ...I18N.nodes(...)). */
  function nodes(key, params) {
    const plain = {};
    const parts = {};
    for (const [name, value] of Object.entries(params || {})) {
      if (typeof Node !== "undefined" && value instanceof Node) parts[name] = value;
      else plain[name] = value;
    }
    const out = [];
    const marker = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
    const textOf = t(key, plain);
    let last = 0;
    for (const m of textOf.matchAll(marker)) {
      if (!(m[1] in parts)) continue;
      if (m.index > last) out.push(textOf.slice(last, m.index));
      out.push(parts[m[1]]);
      last = m.index + m[0].length;
    }
    if (last < textOf.length) out.push(textOf.slice(last));
    return out;
  }

  const ATTRIBUTES = [["i18nPlaceholder", "placeholder"], ["i18nTitle", "title"],
    ["i18nAriaLabel", "aria-label"]];

  /** Translate the static text under `root`: data-i18n (text) and the attribute forms. */
  function apply(root) {
    const scope = root || document;
    for (const node of scope.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const [data, attr] of ATTRIBUTES) {
      const selector = `[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
      for (const node of scope.querySelectorAll(selector)) node.setAttribute(attr, t(node.dataset[data]));
    }
  }

  const known = (lang) => Object.prototype.hasOwnProperty.call(all.messages, lang);
  const localeOf = (lang) => (all.region ? `${lang}-${all.region}` : lang);

  /** Switch the page to `lang`: <html lang dir>, the static text, then the listeners. */
  function setLanguage(lang) {
    const next = known(lang) ? lang : (known(all.default) ? all.default : "en");
    state.lang = next;
    try { localStorage.setItem(REMEMBERED, next); } catch { /* storage off: not kept */ }
    const html = document.documentElement;
    html.lang = localeOf(next);
    html.dir = (all.rtl || []).includes(next) ? "rtl" : "ltr";
    apply(document);
    for (const fn of listeners) {
      try { fn(next); } catch (err) { if (window.console) console.error(err); }
    }
    return next;
  }

  window.I18N = {
    t,
    nodes,
    apply,
    setLanguage,
    onChange(fn) { listeners.push(fn); },
    get lang() { return state.lang; },
    /** The centre's language (IVR_INTERFACE_LANGUAGE): an agent's who has not chosen. */
    get defaultLanguage() { return known(all.default) ? all.default : "en"; },
    get locale() { return localeOf(state.lang); },
    get dir() { return (all.rtl || []).includes(state.lang) ? "rtl" : "ltr"; },
    get languages() { return { ...all.languages }; },
  };
  // Deferred, this runs once the page is parsed: the page starts in the centre's language.
  setLanguage(remembered() || state.lang);
}());
