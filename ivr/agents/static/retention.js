// Retention in the agent console (issue 17.4): the wrap-up's lists come from the server
// (the admin's wrapup.yaml through GET /agent/retention/lists), not from the page, and a
// leaving reason opens the exit interview's two questions: the customer's words (needed
// for "other") and whether the customer stayed.
//
// console.js tells this file what happens through DOM events on `document` (this file is
// loaded before console.js): console:me (signed in: read the lists), console:clear (a
// wrap-up is done or the call is gone: read them again, so an admin's edit shows at the
// next call). console.js asks `window.IVRRetention.wrapupFields()` for the exit interview's
// fields when it posts the wrap-up. Every word is a t() key of
// ivr/i18n/catalogs/retention.json; the admin's labels go in as text only.
"use strict";

(function () {
  const I18N = window.I18N;
  const tr = (key, params) => I18N.t(`retention.ui.${key}`, params);
  const $ = (id) => document.getElementById(id);
  // ivr: the leaving reason the caller chose in the IVR (the pop's ivr_leaving_reason) of
  // the call on screen; the wrap-up form starts with it once per call.
  const ui = { lists: null, loading: null, ivr: { sid: null, code: null, filled: null } };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function load() {
    if (ui.loading) return ui.loading;
    ui.loading = (async () => {
      try {
        const response = await fetch("/agent/retention/lists",
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (response.ok) {
          ui.lists = await response.json();
          render();
        }
      } catch {
        // Offline for a moment: the lists already shown stay; read again at the next call.
      } finally {
        ui.loading = null;
      }
    })();
    return ui.loading;
  }

  /** The reason in the wrap-up draft of the call on screen (console.js keeps drafts in
   *  sessionStorage): a draft restored before the reasons arrived had no option to pick. */
  function drafted() {
    const sid = $("call") ? $("call").getAttribute("data-call-sid") : null;
    if (!sid) return "";
    try {
      for (let i = 0; i < sessionStorage.length; i += 1) {
        const key = sessionStorage.key(i) || "";
        if (key.startsWith("ivr-wrapup-draft:") && key.endsWith(`:${sid}`)) {
          const draft = JSON.parse(sessionStorage.getItem(key) || "null");
          return (draft && typeof draft.leaving_reason === "string") ? draft.leaving_reason : "";
        }
      }
    } catch {
      // Storage off or unreadable: no draft.
    }
    return "";
  }

  const label = (reason) => (I18N.lang === "he" && reason.label_he) || reason.label;

  /** The datalists and the reasons' select, keeping what the agent picked. */
  function render() {
    const lists = ui.lists;
    if (!lists) return;
    for (const [id, values] of [["topics", lists.topics], ["outcomes", lists.outcomes]]) {
      const box = $(id);
      if (box) box.replaceChildren(...values.map((v) => el("option", { value: v })));
    }
    const select = $("wu-leaving");
    if (!select) return;
    const fromIvr = ui.ivr.filled !== ui.ivr.sid ? ui.ivr.code : null;
    const picked = select.value || drafted() || fromIvr || "";
    const none = select.querySelector("option[value='']");
    select.replaceChildren(...[none].filter(Boolean),
      ...lists.leaving_reasons.map((r) => el("option", { value: r.code }, label(r))));
    if ([...select.options].some((o) => o.value === picked)) select.value = picked;
    if (fromIvr && select.value === fromIvr) ui.ivr.filled = ui.ivr.sid;
    ensureInterview();
    said();
    sync();
  }

  /** What the caller chose in the IVR, under the reason (hidden when nothing). */
  function said() {
    const select = $("wu-leaving");
    if (!select) return;
    let note = $("wu-ivr-reason");
    if (!note) {
      note = el("p", { id: "wu-ivr-reason", class: "hint", hidden: true });
      select.after(note);
    }
    const code = ui.ivr.code;
    const reason = code && ui.lists ? ui.lists.leaving_reasons.find((r) => r.code === code) : null;
    note.hidden = !code;
    note.textContent = code ? tr("ivr_said", { reason: reason ? label(reason) : code }) : "";
  }

  /** A screen-pop: the IVR's answer shows, and starts the wrap-up form once per call
   *  (a draft or the agent's own pick wins). */
  function popped(ctx) {
    const code = (ctx && typeof ctx.ivr_leaving_reason === "string") ? ctx.ivr_leaving_reason : null;
    ui.ivr.sid = ctx ? ctx.call_sid : null;
    ui.ivr.code = code;
    const select = $("wu-leaving");
    // The reasons not read yet: render() fills it in when they come.
    if (select && code && ui.ivr.filled !== ui.ivr.sid
        && [...select.options].some((o) => o.value === code)) {
      ui.ivr.filled = ui.ivr.sid;
      if (!select.value && !drafted()) select.value = code;
    }
    said();
    sync();
  }

  /** The exit interview's questions, under the reason (built once). */
  function ensureInterview() {
    if ($("wu-exit")) return;
    const anchor = $("wu-leaving-error") || $("wu-leaving");
    const box = el("div", { id: "wu-exit", class: "exit-interview", hidden: true },
      el("label", { for: "wu-leaving-text", id: "wu-leaving-text-label" }),
      el("input", { id: "wu-leaving-text", name: "leaving_text", maxlength: "500",
        dir: "auto", autocomplete: "off" }),
      el("p", { class: "field-error", id: "wu-leaving-text-error" }),
      el("fieldset", { class: "choices", id: "wu-stayed-set" },
        el("legend", { id: "wu-stayed-legend" }),
        ...[["stayed", "wu-stayed-yes"], ["left", "wu-stayed-no"], ["", "wu-stayed-unknown"]]
          .map(([value, id]) => el("div", { class: "check" },
            el("input", { type: "radio", name: "stayed", id, value,
              checked: value === "" ? true : null }),
            el("label", { for: id, id: `${id}-label` })))));
    anchor.after(box);
    $("wu-leaving").addEventListener("change", sync);
    // console.js resets the form for the next call; "reset" comes before the values change.
    const form = $("wrapup-form");
    if (form) form.addEventListener("reset", () => setTimeout(sync, 0));
    words();
  }

  function words() {
    const set = (id, key) => { const n = $(id); if (n) n.textContent = tr(key); };
    set("wu-leaving-text-label", "words");
    set("wu-stayed-legend", "stayed");
    set("wu-stayed-yes-label", "stayed_yes");
    set("wu-stayed-no-label", "stayed_no");
    set("wu-stayed-unknown-label", "stayed_unknown");
  }

  /** The interview shows once a reason is picked; "other" needs the customer's words. */
  function sync() {
    const select = $("wu-leaving");
    const box = $("wu-exit");
    if (!select || !box) return;
    const reason = select.value;
    box.hidden = !reason;
    const other = ui.lists && reason === ui.lists.other;
    $("wu-leaving-text").required = Boolean(other);
    $("wu-leaving-text").placeholder = other ? tr("words_needed") : "";
  }

  function reset() {
    const text = $("wu-leaving-text");
    if (text) text.value = "";
    const unknown = $("wu-stayed-unknown");
    if (unknown) unknown.checked = true;
    sync();
  }

  window.IVRRetention = {
    /** The exit interview's part of the wrap-up body (nothing when no reason is given). */
    wrapupFields() {
      const reason = $("wu-leaving") ? $("wu-leaving").value : "";
      if (!reason) return {};
      const words = ($("wu-leaving-text") || { value: "" }).value.trim();
      const stayed = document.querySelector("input[name=stayed]:checked");
      const value = stayed ? stayed.value : "";
      return { leaving_text: words || null,
        stayed: value === "stayed" ? true : value === "left" ? false : null };
    },
    /** Why the interview cannot be sent as it is (null: it can). */
    problem() {
      const reason = $("wu-leaving") ? $("wu-leaving").value : "";
      const words = ($("wu-leaving-text") || { value: "" }).value.trim();
      return ui.lists && reason === ui.lists.other && !words ? tr("words_needed") : null;
    },
  };

  document.addEventListener("console:me", () => { if (!ui.lists) load(); });
  document.addEventListener("console:screenpop", (e) => popped(e.detail));
  document.addEventListener("console:clear", () => {
    ui.ivr = { sid: null, code: null, filled: null };
    said();
    reset();
    load();
  });
  document.addEventListener("DOMContentLoaded", () => { load(); });
  if (I18N && I18N.onChange) I18N.onChange(() => { render(); words(); });
})();
