// Follow-ups and promises in the agent console (issue 17.2): the reason of a follow-up
// call on its screen-pop ("Follow-up on the internet closed yesterday"), an agent's own
// promise warnings with a "Kept" button, and, for supervisors, the follow-ups and promises
// box (GET /agent/followups), refreshed on each `followup` event of the console's stream.
//
// console.js tells this file what happens through DOM events on `document` (this file is
// loaded before console.js): console:stream, console:me, console:screenpop, console:clear.
// Every word is a t() key of ivr/i18n/catalogs/followups.json; data goes in as text only.
"use strict";

(function () {
  const I18N = window.I18N;
  const tr = (key, params) => I18N.t(`followups.ui.${key}`, params);
  const $ = (id) => document.getElementById(id);

  const ui = { me: null, ctx: null, board: null, mine: [], failed: [] };

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

  function when(iso) {
    const d = iso ? new Date(iso) : null;
    if (!d || Number.isNaN(d.getTime())) return "";
    try {
      return new Intl.DateTimeFormat(I18N.locale, { timeZone: ui.me?.timezone || undefined,
        dateStyle: "medium", timeStyle: "short" }).format(d);
    } catch {
      return d.toISOString();
    }
  }

  async function call(method, path) {
    const response = await fetch(path, { method, credentials: "same-origin",
      headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  // --- the screen-pop of a follow-up call ------------------------------------------------

  function renderPop() {
    const old = $("followup-banner");
    if (old) old.remove();
    const f = ui.ctx?.followup;
    const box = $("banners");
    if (!f || !box) return;
    box.append(el("div", { class: "banner info", id: "followup-banner", dataset: { followup: f.id } },
      el("strong", { class: "banner-title" }, tr("pop_title")), " — ", el("span", { dir: "auto" }, f.text)));
  }

  // --- promises: the kept button ----------------------------------------------------------

  function keptButton(promiseId, after) {
    const button = el("button", { type: "button", class: "promise-kept", dataset: { promise: promiseId } },
      tr("kept"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await call("POST", `/agent/promises/${encodeURIComponent(promiseId)}/kept`);
        button.replaceWith(el("span", { class: "promise-kept-done" }, tr("kept_done")));
        after();
      } catch {
        button.disabled = false;
      }
    });
    return button;
  }

  function promiseLine(p, key) {
    const owner = p.owner_agent_id ? tr("owner_agent", { id: p.owner_agent_id })
      : tr("owner_queue", { queue: p.owner_queue || "" });
    return el("p", { class: `banner ${key === "broken" ? "danger" : "warning"} promise`, dataset: { promise: p.id } },
      el("span", { dir: "auto" }, tr(key, { when: when(key === "broken" ? p.broken_at : p.due_at), action: p.action })),
      " · ", owner, " ", p.kept_at ? "" : keptButton(p.id, refresh));
  }

  function renderMine() {
    const box = $("banners");
    const old = $("followup-mine");
    if (old) old.remove();
    if (!box || !ui.mine.length) return;
    box.append(el("div", { id: "followup-mine" }, ui.mine.map((p) => el("p", {
      class: "banner warning promise", dataset: { promise: p.promise_id } },
    el("span", { dir: "auto" }, tr("warning_mine", { when: when(p.due_at), action: p.action })), " ",
    keptButton(p.promise_id, () => { ui.mine = ui.mine.filter((x) => x !== p); renderMine(); })))));
  }

  // --- the supervisor's box ---------------------------------------------------------------

  function supervisorBox() {
    let box = $("sup-followups");
    if (box) return box;
    const section = $("supervisor");
    if (!section) return null;
    box = el("div", { id: "sup-followups", class: "sup-followups", role: "status", "aria-live": "polite" });
    section.append(el("h3", { id: "sup-followups-title" }), box);
    return box;
  }

  function renderBoard() {
    if (!ui.me || ui.me.role !== "admin" || !ui.board) return;
    const box = supervisorBox();
    if (!box) return;
    $("sup-followups-title").textContent = tr("title");
    const promises = ui.board.promises || {};
    const atRisk = (promises.at_risk || []);
    const broken = (promises.broken || []).filter((p) => !p.kept_at);
    const lines = [el("p", { class: "summary" }, tr("summary", {
      open: (ui.board.followups || []).length, at_risk: atRisk.length, broken: broken.length }))];
    lines.push(...ui.failed.map((f) => el("p", { class: "banner danger followup-failed" },
      tr("failed", { id: f.followup_id, attempts: f.attempts || 0 }))));
    lines.push(...broken.map((p) => promiseLine(p, "broken")), ...atRisk.map((p) => promiseLine(p, "at_risk")));
    if (!atRisk.length && !broken.length && !ui.failed.length) lines.push(el("p", { class: "empty" }, tr("none")));
    box.replaceChildren(...lines);
  }

  async function refresh() {
    if (!ui.me || ui.me.role !== "admin") return;
    try {
      ui.board = await call("GET", "/agent/followups");
      renderBoard();
    } catch { /* follow-ups off (503) or offline for a moment: the box stays as it was */ }
  }

  function event(data) {
    if (!data || !data.kind) return;
    if (data.kind === "promise_warning" && ui.me && data.owner_agent_id === ui.me.id
        && !ui.mine.some((p) => p.promise_id === data.promise_id)) {
      ui.mine.push(data);
      renderMine();
    }
    if (data.kind === "failed" && !ui.failed.some((f) => f.followup_id === data.followup_id)) {
      ui.failed.unshift(data);
      ui.failed.length = Math.min(ui.failed.length, 8);
    }
    refresh();
  }

  document.addEventListener("console:me", (e) => {
    const first = !ui.me;
    ui.me = e.detail;
    if (first) refresh();
  });
  document.addEventListener("console:stream", (e) => {
    e.detail.addEventListener("followup", (m) => {
      try { event(JSON.parse(m.data)); } catch { /* not ours to break the console */ }
    });
  });
  document.addEventListener("console:screenpop", (e) => { ui.ctx = e.detail; renderPop(); });
  document.addEventListener("console:clear", () => { ui.ctx = null; });
  I18N.onChange(() => { renderPop(); renderMine(); renderBoard(); });
}());
