// Post-call surveys in the agent console (issue 17.1): the customer's last rating on the
// screen-pop ("Last call rated 2/5"), and, for supervisors, the low scores as they come
// (the `survey` events of the console's stream).
//
// console.js tells this file what happens through DOM events on `document` (this file is
// loaded before console.js): console:stream (the EventSource: `survey` events),
// console:me (the role), console:screenpop (the pop, after console.js drew its banners).
// Every word is a t() key of ivr/i18n/catalogs/surveys.json; data goes in as text only.
"use strict";

(function () {
  const I18N = window.I18N;
  const tr = (key, params) => I18N.t(`surveys.ui.${key}`, params);
  const $ = (id) => document.getElementById(id);
  const MAX_ALERTS = 8;

  const ui = { me: null, ctx: null, alerts: [] };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const txt = (value) => el("span", { dir: "auto" }, value ?? "");

  /** The text of `key` with each `{name}` whose value is a Node put in place as that node
   *  (a name in its own direction), never through HTML. */
  function parts(key, params) {
    const plain = {};
    const nodes = {};
    for (const [name, value] of Object.entries(params)) {
      if (value instanceof Node) nodes[name] = value; else plain[name] = value;
    }
    return I18N.t(key, plain).split(/\{([A-Za-z_][A-Za-z0-9_]*)\}/)
      .map((piece, i) => (i % 2 ? nodes[piece] ?? `{${piece}}` : piece));
  }

  function when(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || Number.isNaN(d.getTime())) return "";
    const zone = ui.me?.timezone || undefined;
    try {
      return new Intl.DateTimeFormat(I18N.locale, { timeZone: zone, dateStyle: "medium", timeStyle: "short" }).format(d);
    } catch {
      return d.toISOString();
    }
  }

  // --- the screen-pop ---------------------------------------------------------------------

  function renderRating() {
    const old = $("survey-banner");
    if (old) old.remove();
    const last = ui.ctx?.last_survey;
    const box = $("banners");
    if (!last || !box) return;
    const body = parts("surveys.ui.last_rated_by", {
      when: when(last.at), agent: txt(last.agent || tr("no_agent")), queue: txt(last.queue || tr("no_queue")),
    });
    const banner = el("div", { class: `banner ${last.low ? "danger" : "info"}`, id: "survey-banner",
      dataset: { score: last.score } },
    el("strong", { class: "banner-title" }, tr("last_rated", { score: last.score, of: last.of || 5 })),
    " — ", ...body);
    box.append(banner);
  }

  // --- the supervisor's alerts ------------------------------------------------------------

  function alertsBox() {
    let box = $("sup-surveys");
    if (box) return box;
    const section = $("supervisor");
    if (!section) return null;
    box = el("div", { id: "sup-surveys", class: "sup-surveys", role: "status", "aria-live": "polite" });
    const title = el("h3", { id: "sup-surveys-title" });
    // Above the callbacks (their heading is the one before their summary line).
    const callbacks = $("sup-sla")?.previousElementSibling;
    if (callbacks && callbacks.tagName === "H3") callbacks.before(title, box);
    else section.append(title, box);
    return box;
  }

  function renderAlerts() {
    if (!ui.me || ui.me.role !== "admin") return;
    const box = alertsBox();
    if (!box) return;
    $("sup-surveys-title").textContent = tr("alerts_title");
    if (!ui.alerts.length) {
      box.replaceChildren(el("p", { class: "empty" }, tr("no_alerts")));
      return;
    }
    box.replaceChildren(...ui.alerts.map((a) => el("p", {
      class: "banner danger survey-alert", dataset: { response: a.response_id, score: a.score } },
    el("strong", { class: "banner-title" }, tr("low_title", { score: a.score, of: a.of || 5 })),
    " — ",
    ...parts("surveys.ui.low_body", {
      customer: txt(a.customer || tr("unknown_caller")),
      agent: txt(a.agent || tr("no_agent")),
      queue: txt(a.queue || tr("no_queue")),
    }),
    a.followup ? [" ", tr("followup_call")] : "",
    " · ", when(a.at))));
  }

  function lowScore(a) {
    if (!a || a.kind !== "low") return;
    if (ui.alerts.some((x) => x.response_id === a.response_id)) return;  // a replay
    ui.alerts.unshift(a);
    ui.alerts.length = Math.min(ui.alerts.length, MAX_ALERTS);
    renderAlerts();
  }

  document.addEventListener("console:me", (e) => {
    const first = !ui.me;
    ui.me = e.detail;
    if (first) renderAlerts();
  });
  document.addEventListener("console:stream", (e) => {
    e.detail.addEventListener("survey", (m) => {
      try { lowScore(JSON.parse(m.data)); } catch { /* not ours to break the console */ }
    });
  });
  document.addEventListener("console:screenpop", (e) => { ui.ctx = e.detail; renderRating(); });
  document.addEventListener("console:clear", () => { ui.ctx = null; });
  I18N.onChange(() => { renderRating(); renderAlerts(); });
}());
