// Transfers in the agent console (issue 16): hold / resume the caller, transfer them to a
// queue, a named agent or one of the admin's outside numbers, cold or warm (a consult with
// the caller on hold, then "Join all three", "Hand over" or "Cancel — take the caller
// back"), with a note; the second agent's "transferred by …" line on the pop; and, for
// supervisors, the calls in progress with the held and transferring ones marked and
// Monitor / Barge buttons.
//
// console.js tells this file what happens through DOM events on `document` (it is loaded
// before console.js, so it hears the first of them): console:stream (the EventSource, to
// listen to `hold` and `transfer`), console:me, console:screenpop (the pop on screen),
// console:status (ringing / answered / ended / transferred), console:clear, console:board
// (the supervisor's data). Every word is a t() key of ivr/i18n/catalogs/transfers_console.json;
// every piece of data goes in through textContent or an attribute, never as HTML.
"use strict";

(function () {
  const I18N = window.I18N;
  const tr = (key, params) => I18N.t(`transfers.ui.${key}`, params);
  const $ = (id) => document.getElementById(id);

  const OPEN_STATES = new Set(["pending", "ringing", "consulting", "joined"]);
  const KINDS = ["queue", "agent", "external"];
  const REASONS = new Set(["no-answer", "busy", "declined", "failed", "hung-up", "rest-failed",
    "closed", "abandoned", "interrupted", "canceled"]);

  const ui = {
    me: null,
    ctx: null,          // the screen-pop on screen
    status: null,       // the call's status as console.js shows it
    held: false,
    heldAt: null,
    transfer: null,     // the latest transfer of this call, as the server said
    targets: null,      // GET /agent/transfer-targets
    busy: false,        // a request of ours is on its way
    message: null,      // () => [text, kind]: said after a transfer ended or failed
    board: "",          // the supervisor section's last signature
    lastBoard: null,    // the supervisor's data it was drawn from
    formOpen: false,
    said: "",           // what the last Monitor / Barge did
  };

  // --- DOM helpers (text only) ---------------------------------------------------------

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

  const txt = (value, cls) => el("span", { dir: "auto", class: cls || null }, value ?? "");

  function parse(iso) {
    const d = iso ? new Date(iso) : null;
    return d && !Number.isNaN(d.getTime()) ? d : null;
  }

  function clock(iso) {
    const d = parse(iso);
    if (!d) return "";
    const zone = ui.me?.timezone;
    const options = { hour: "2-digit", minute: "2-digit" };
    try {
      return new Intl.DateTimeFormat(I18N.locale, { ...options, timeZone: zone }).format(d);
    } catch {
      return new Intl.DateTimeFormat(I18N.locale, options).format(d);
    }
  }

  /** "45 s", "4 min" (how long the caller had been with the first agent). */
  function howLong(seconds) {
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    return s < 60 ? tr("seconds", { count: s }) : tr("minutes", { count: Math.round(s / 60) });
  }

  // --- HTTP ------------------------------------------------------------------------------

  class Refused extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new Refused(0, "");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
    if (!response.ok) throw new Refused(response.status, detailOf(data, response.status));
    return data;
  }

  function detailOf(data, status) {
    const detail = data?.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d?.msg || "").filter(Boolean).join("; ");
    return `HTTP ${status}`;
  }

  const REFUSALS = { 404: "err_404", 409: "err_409", 422: "err_422", 502: "err_502", 504: "err_502" };

  /** What a refusal means, in the agent's words; the server's own sentence says which. */
  function refusal(err) {
    if (!(err instanceof Refused) || err.status === 0) return tr("err_network");
    const detail = String(err.detail || "").replace(/[.\s]+$/, "");
    return tr(REFUSALS[err.status] || "err_other", { detail });
  }

  // --- the panel -------------------------------------------------------------------------

  function build() {
    const panel = $("xfer");
    if (!panel) return;
    panel.replaceChildren(
      el("h2", { id: "xfer-title" }, tr("title")),
      el("div", { class: "xfer-actions" },
        el("button", { type: "button", id: "xfer-hold" }, tr("hold")),
        el("button", { type: "button", id: "xfer-open", "aria-expanded": "false",
          "aria-controls": "xfer-form" }, tr("transfer_open")),
        el("p", { id: "xfer-status", class: "xfer-status", role: "status", "aria-live": "polite" })),
      el("p", { id: "xfer-error", class: "error", role: "alert" }),
      el("div", { id: "xfer-consult", class: "xfer-consult", hidden: true },
        el("button", { type: "button", id: "xfer-join", class: "primary" }, tr("join")),
        el("button", { type: "button", id: "xfer-handover" }, tr("handover")),
        el("button", { type: "button", id: "xfer-cancel", class: "danger" }, tr("cancel"))),
      form());
    $("xfer-hold").addEventListener("click", toggleHold);
    $("xfer-open").addEventListener("click", () => openForm(!ui.formOpen));
    $("xfer-join").addEventListener("click", () => step("join"));
    $("xfer-handover").addEventListener("click", () => step("handover"));
    $("xfer-cancel").addEventListener("click", () => step("cancel"));
    $("xfer-form").addEventListener("submit", submit);
    $("xfer-form").addEventListener("change", (e) => {
      if (e.target.name === "xfer-kind") fillTargets();
      if (e.target.id === "xfer-target") hint();
    });
    $("xfer-close").addEventListener("click", () => { openForm(false); $("xfer-open").focus(); });
    $("xfer-form").addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); openForm(false); $("xfer-open").focus(); }
    });
  }

  function radio(name, value, label, checked) {
    const id = `${name}-${value}`;
    return el("div", { class: "check" },
      el("input", { type: "radio", name, id, value, checked }),
      el("label", { for: id }, label));
  }

  function form() {
    return el("form", { id: "xfer-form", class: "xfer-form", hidden: true, novalidate: true,
      "aria-labelledby": "xfer-form-title" },
    el("h3", { id: "xfer-form-title" }, tr("form_title")),
    el("fieldset", { class: "choices" }, el("legend", {}, tr("kind")),
      KINDS.map((k, i) => radio("xfer-kind", k, tr(`kind_${k}`), i === 0))),
    el("label", { for: "xfer-target", id: "xfer-target-label" }, tr("target_queue")),
    el("select", { id: "xfer-target", required: true, "aria-describedby": "xfer-target-hint" }),
    el("p", { id: "xfer-target-hint", class: "muted hint" }),
    el("fieldset", { class: "choices", id: "xfer-mode-set", "aria-describedby": "xfer-mode-hint" },
      el("legend", {}, tr("mode")),
      radio("xfer-mode", "cold", tr("mode_cold"), true),
      radio("xfer-mode", "warm", tr("mode_warm"), false),
      el("p", { id: "xfer-mode-hint", class: "muted hint" })),
    el("label", { for: "xfer-note" }, tr("note")),
    el("textarea", { id: "xfer-note", rows: 2, maxlength: 500, dir: "auto",
      "aria-describedby": "xfer-note-hint" }),
    el("p", { id: "xfer-note-hint", class: "muted hint" }, tr("note_hint")),
    el("p", { id: "xfer-form-error", class: "error", role: "alert" }),
    el("div", { class: "xfer-buttons" },
      el("button", { type: "submit", id: "xfer-submit", class: "primary" }, tr("submit")),
      el("button", { type: "button", id: "xfer-close" }, tr("close"))));
  }

  const kind = () => document.querySelector("input[name=xfer-kind]:checked")?.value || "queue";
  const mode = () => document.querySelector("input[name=xfer-mode]:checked")?.value || "cold";

  async function openForm(open) {
    ui.formOpen = open;
    $("xfer-open").setAttribute("aria-expanded", String(open));
    $("xfer-form").hidden = !open;
    $("xfer-form-error").textContent = "";
    if (!open) return;
    $("xfer-error").textContent = "";
    // Each transfer starts from the top: a queue, cold, no note.
    $("xfer-kind-queue").checked = true;
    $("xfer-mode-cold").checked = true;
    $("xfer-kind-queue").focus();
    ui.targets = null;
    fillTargets();
    try {
      ui.targets = await api("GET", "/agent/transfer-targets");
    } catch (err) {
      $("xfer-form-error").textContent = tr("err_targets", { detail: err.detail || err.message });
      return;
    }
    fillTargets();
  }

  function agentOption(a) {
    if (a.available) return el("option", { value: String(a.id) }, tr("agent_available", { name: a.name }));
    if (a.state === "offline") {
      return el("option", { value: String(a.id), disabled: true }, tr("agent_offline", { name: a.name }));
    }
    const state = ["reserved", "on_call", "wrap_up"].includes(a.state) ? tr(`state_${a.state}`) : a.state;
    return el("option", { value: String(a.id), disabled: true }, tr("agent_busy", { name: a.name, state }));
  }

  /** The select's options for the chosen kind: queues (closed ones say so), agents
   *  (available first; busy and offline shown, not selectable), outside numbers. */
  function fillTargets() {
    const k = kind();
    const select = $("xfer-target");
    const previous = select.dataset.kind === k ? select.value : "";
    select.dataset.kind = k;
    $("xfer-target-label").textContent = tr(`target_${k}`);
    const options = [el("option", { value: "" }, ui.targets ? tr("choose") : tr("loading"))];
    const t = ui.targets || {};
    if (k === "queue") {
      for (const q of t.queues || []) {
        options.push(el("option", { value: q.name, dataset: { open: String(q.open !== false) } },
          q.open === false ? tr("queue_closed", { name: q.name })
            : tr("queue_open", { name: q.name, waiting: q.waiting ?? 0, agents: q.available_agents ?? 0 })));
      }
    } else if (k === "agent") {
      const agents = [...(t.agents || [])].sort((a, b) => Number(Boolean(b.available)) - Number(Boolean(a.available)));
      options.push(...agents.map(agentOption));
    } else {
      for (const x of t.external || []) {
        options.push(el("option", { value: x.name }, x.number ? `${x.name} (${x.number})` : x.name));
      }
    }
    if (ui.targets && options.length === 1) {
      options[0].textContent = tr(k === "queue" ? "no_queues" : k === "agent" ? "no_agents" : "no_external");
    }
    select.replaceChildren(...options);
    if (previous && [...select.options].some((o) => o.value === previous && !o.disabled)) select.value = previous;
    // A queue transfer is always cold: the warm choice is there, but off.
    const warm = $("xfer-mode-warm");
    warm.disabled = k === "queue";
    if (k === "queue") $("xfer-mode-cold").checked = true;
    $("xfer-mode-hint").textContent = k === "queue" ? tr("queue_always_cold") : "";
    hint();
  }

  function hint() {
    const option = $("xfer-target").selectedOptions[0];
    let text = "";
    if (kind() === "queue" && option && option.value) {
      text = option.dataset.open === "false" ? tr("closed_hint") : tr("queue_hint");
    }
    $("xfer-target-hint").textContent = text;
    $("xfer-target").classList.toggle("closed", option?.dataset.open === "false");
  }

  async function submit(event) {
    event.preventDefault();
    if (!ui.ctx || ui.busy) return;
    const target = $("xfer-target").value;
    $("xfer-form-error").textContent = "";
    if (!target) {
      $("xfer-target").setAttribute("aria-invalid", "true");
      $("xfer-form-error").textContent = tr("pick_target");
      $("xfer-target").focus();
      return;
    }
    $("xfer-target").removeAttribute("aria-invalid");
    const k = kind();
    const body = { kind: k, target, mode: k === "queue" ? "cold" : mode(), note: $("xfer-note").value.trim() || null };
    busy(true);
    ui.message = null;
    try {
      const out = await api("POST", `/agent/calls/${encodeURIComponent(ui.ctx.call_sid)}/transfer`, body);
      $("xfer-note").value = "";
      openForm(false);
      if (out?.transfer) setTransfer(out.transfer);
    } catch (err) {
      $("xfer-form-error").textContent = refusal(err);
      // A refusal may say the list was stale (an agent went busy): show it as it is now.
      if (err.status === 409 || err.status === 404) {
        api("GET", "/agent/transfer-targets").then((t) => { ui.targets = t; fillTargets(); }).catch(() => {});
      }
    } finally {
      busy(false);
    }
    render();
    focusNext();
  }

  async function toggleHold() {
    if (!ui.ctx || ui.busy) return;
    const action = ui.held ? "resume" : "hold";
    busy(true);
    $("xfer-error").textContent = "";
    try {
      const out = await api("POST", `/agent/calls/${encodeURIComponent(ui.ctx.call_sid)}/${action}`);
      if (out && typeof out.held === "boolean") setHold(out.held, out.held_at);
    } catch (err) {
      $("xfer-error").textContent = refusal(err);
    } finally {
      busy(false);
    }
    render();
  }

  async function step(action) {
    const transfer = ui.transfer;
    if (!transfer || ui.busy) return;
    busy(true);
    $("xfer-error").textContent = "";
    try {
      const out = await api("POST", `/agent/transfers/${encodeURIComponent(transfer.id)}/${action}`);
      if (out?.transfer) setTransfer(out.transfer);
    } catch (err) {
      $("xfer-error").textContent = refusal(err);
      // What stands now, as the server sees it.
      api("GET", `/agent/transfers/${encodeURIComponent(transfer.id)}`)
        .then((o) => { if (o?.transfer) { setTransfer(o.transfer); render(); focusNext(); } })
        .catch(() => {});
    } finally {
      busy(false);
    }
    render();
    focusNext();
  }

  function busy(on) {
    ui.busy = on;
    const panel = $("xfer");
    if (panel) panel.setAttribute("aria-busy", String(on));
  }

  // --- state from the server -------------------------------------------------------------

  const mine = (transfer) => transfer && ui.me && transfer.from_agent?.id === ui.me.id;
  const open = (transfer) => transfer && OPEN_STATES.has(transfer.state);
  const targetName = (transfer) => transfer.target_name || transfer.to_agent?.name || transfer.target || "";

  function setHold(held, heldAt) {
    ui.held = Boolean(held);
    ui.heldAt = held ? heldAt || ui.heldAt || new Date().toISOString() : null;
  }

  function setTransfer(transfer) {
    if (!transfer || (ui.ctx && transfer.call_sid !== ui.ctx.call_sid)) return;
    const before = ui.transfer;
    if (before && before.id === transfer.id && before.updated_at && transfer.updated_at
        && transfer.updated_at < before.updated_at) return;  // an older word than we have
    ui.transfer = transfer;
    if (!mine(transfer)) {
      const toMe = ui.me && transfer.to_agent?.id === ui.me.id;
      if (toMe && ["consulting", "joined", "completed"].includes(transfer.state)) {
        // This agent's leg answered: the call is on for console.js too.
        document.dispatchEvent(new CustomEvent("console:answered", {
          detail: { call_sid: transfer.call_sid } }));
      }
      if (toMe && (transfer.state === "failed" || transfer.state === "canceled")) {
        // It never became this agent's call: console.js takes the pop away and says why.
        const by = transfer.from_agent?.name || "";
        const message = transfer.state === "canceled" ? tr("target_canceled", { by })
          : tr("target_failed", { by, why: reasonText(transfer.reason) });
        document.dispatchEvent(new CustomEvent("console:drop", {
          detail: { call_sid: transfer.call_sid, message } }));
      }
      return;
    }
    const name = targetName(transfer);
    if (transfer.state === "failed") {
      const back = () => (transfer.caller_back_to ? ` ${tr(`back_${transfer.caller_back_to}`)}` : "");
      ui.message = () => [tr("st_failed", { name, why: reasonText(transfer.reason) }) + back(), "error"];
    } else if (transfer.state === "canceled") {
      ui.message = () => [tr("st_canceled"), "ok"];
    } else if (transfer.state === "completed") {
      ui.message = () => [tr("st_completed", { name }), "ok"];
    } else {
      ui.message = null;
    }
  }

  function reasonText(reason) {
    return REASONS.has(reason) ? tr(`why_${reason}`) : tr("why_unknown");
  }

  function onHoldEvent(e) {
    const d = json(e);
    if (!d || !ui.ctx || d.call_sid !== ui.ctx.call_sid) return;
    setHold(d.held, d.held_at);
    render();
  }

  function onTransferEvent(e) {
    const d = json(e);
    if (!d?.transfer) return;
    setTransfer(d.transfer);
    render();
    if (mine(d.transfer)) focusNext();
  }

  function onCallEvent(e) {
    const d = json(e);
    if (d && ui.ctx && d.call_sid === ui.ctx.call_sid && d.status === "transferred") {
      // The first agent's part is over (console.js said so through console:status, in
      // words of ours): the wrap-up is next.
      $("wu-topic")?.focus();
    }
  }

  function json(event) {
    try { return JSON.parse(event.data); } catch { return null; }
  }

  // --- drawing ---------------------------------------------------------------------------

  function statusText() {
    const transfer = ui.transfer;
    if (transfer && mine(transfer) && open(transfer)) {
      const name = targetName(transfer);
      if (transfer.state === "ringing" && transfer.mode !== "warm") return [tr("st_ringing_cold", { name }), "info"];
      return [tr(`st_${transfer.state}`, { name }), "info"];
    }
    if (ui.message) return ui.message();  // drawn now: in the current language
    if (ui.held) return [tr("on_hold_since", { time: clock(ui.heldAt) }), "held"];
    return ["", ""];
  }

  function render() {
    const panel = $("xfer");
    if (!panel) return;
    const onCall = Boolean(ui.ctx) && ui.status === "answered";
    const transfer = ui.transfer;
    const consulting = mine(transfer) && open(transfer);
    show(panel, Boolean(ui.ctx) && (onCall || ui.status === "transferred" || Boolean(ui.message)));
    // Hold and Transfer while the call is ours and no transfer of it is open (a second
    // agent in a consult has the call only once it is handed over).
    const incoming = transfer && !mine(transfer) && open(transfer);
    const controls = onCall && !consulting && !incoming;
    const hold = $("xfer-hold");
    hold.hidden = !controls;
    // The button says what it does ("Hold" / "Resume"); the status line says the caller is held.
    hold.textContent = ui.held ? tr("resume") : tr("hold");
    hold.title = ui.held ? tr("resume_label") : tr("hold_label");
    hold.dataset.held = String(ui.held);
    hold.disabled = ui.busy;
    $("xfer-open").hidden = !controls;
    $("xfer-open").disabled = ui.busy;
    if (!controls && ui.formOpen) openForm(false);
    $("xfer-submit").disabled = ui.busy;
    // The consult's three ways out.
    show($("xfer-consult"), Boolean(consulting) && transfer.mode === "warm");
    if (consulting) {
      $("xfer-join").disabled = ui.busy || transfer.state !== "consulting";
      $("xfer-join").hidden = transfer.state === "joined";
      $("xfer-handover").disabled = ui.busy || !["consulting", "joined"].includes(transfer.state);
      $("xfer-cancel").disabled = ui.busy;
    }
    const [text, kind] = statusText();
    const status = $("xfer-status");
    if (status.textContent !== text) status.textContent = text;
    status.dataset.kind = kind;
    panel.dataset.state = consulting ? transfer.state : ui.held ? "held" : "";
    renderFrom();
  }

  function show(node, visible) { if (node) node.hidden = !visible; }

  /** Where to put the keyboard next: the consult's first button that can be pressed,
   *  else Hold. */
  function focusNext() {
    const active = document.activeElement;
    const inPanel = active && $("xfer")?.contains(active) && !active.disabled && !active.hidden
      && active.offsetParent !== null;
    if (inPanel && active.id !== "xfer-submit") return;
    for (const id of ["xfer-join", "xfer-handover", "xfer-cancel", "xfer-hold"]) {
      const b = $(id);
      if (b && !b.disabled && !b.hidden && b.offsetParent !== null) { b.focus(); return; }
    }
  }

  /** The second agent's pop: who transferred the caller, from where, after how long, and
   *  the note; while a warm consult is on, that the caller is on hold. */
  function renderFrom() {
    const box = $("xfer-from");
    if (!box) return;
    const info = ui.ctx?.transfer;
    const own = info && ui.transfer && ui.transfer.id === info.id && mine(ui.transfer);
    if (!info || own) { box.hidden = true; box.replaceChildren(); return; }
    const params = { by: info.by || "", queue: info.from_queue || "", after: howLong(info.after_seconds) };
    const line = info.from_queue ? tr("from_line", params) : tr("from_line_noqueue", params);
    const children = [el("strong", { class: "banner-title" }, tr("from_title")), " — ", line];
    if (info.note) children.push(": ", txt(info.note, "xfer-note-text"));
    const transfer = ui.transfer;
    if (transfer && !mine(transfer) && transfer.id === info.id && transfer.state === "consulting") {
      children.push(el("span", { class: "block consult-incoming" }, tr("consult_incoming", { by: info.by || "" })));
    }
    box.replaceChildren(...children);
    box.hidden = false;
  }

  // --- the supervisor's calls in progress ------------------------------------------------

  function renderBoard(data) {
    const box = $("sup-xfer");
    if (!box || !ui.me || ui.me.role !== "admin") return;
    const calls = (data.agents || []).filter((a) => a.current_call_sid && a.call);
    const signature = JSON.stringify([I18N.lang, calls.map((a) => [a.id, a.name, a.current_call_sid,
      a.call.caller, a.call.queue, a.call.held, a.call.transfer])]);
    if (signature === ui.board) return;  // unchanged: keep the buttons (and the focus) as they are
    ui.board = signature;
    const focused = box.contains(document.activeElement) ? document.activeElement.id : null;
    const held = calls.filter((a) => a.call.held || a.call.transfer);
    const rows = calls.map((a) => {
      const c = a.call;
      const agent = a.name || a.username;
      const marks = [];
      if (c.held) marks.push(el("span", { class: "tag held" }, tr("sup_held")), " ");
      if (c.transfer) {
        const state = ["pending", "ringing", "consulting", "joined"].includes(c.transfer.state)
          ? tr(`sup_state_${c.transfer.state}`) : c.transfer.state;
        marks.push(el("span", { class: "tag transferring", dataset: { state: c.transfer.state } },
          tr("sup_transfer", { mode: tr(c.transfer.mode === "warm" ? "sup_mode_warm" : "sup_mode_cold"),
            name: c.transfer.target_name || "", state })));
      }
      const sid = a.current_call_sid;
      return el("tr", { dataset: { agentId: a.id, callSid: sid, held: String(Boolean(c.held)),
        transfer: c.transfer ? c.transfer.state : "" } },
      el("td", {}, txt(agent, "strong who")),
      el("td", {}, txt(c.caller || "", "who"), c.queue ? txt(c.queue, "muted block") : ""),
      el("td", {}, marks),
      el("td", {}, el("div", { class: "sup-actions" },
        el("button", { type: "button", id: `sup-monitor-${a.id}`, dataset: { action: "monitor", sid, agent },
          "aria-label": tr("monitor_label", { agent }) }, tr("monitor")),
        el("button", { type: "button", id: `sup-barge-${a.id}`, dataset: { action: "barge", sid, agent },
          "aria-label": tr("barge_label", { agent }) }, tr("barge")))));
    });
    box.replaceChildren(
      el("h3", { id: "sup-xfer-title" }, tr("sup_title")),
      held.length ? "" : el("p", { class: "empty" }, tr("sup_none")),
      rows.length ? el("table", { "aria-labelledby": "sup-xfer-title" }, el("tbody", {}, rows)) : "",
      el("p", { id: "sup-xfer-said", class: "muted", role: "status", "aria-live": "polite" }, ui.said || ""));
    if (focused && $(focused)) $(focused).focus();
  }

  async function supervise(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || !$("sup-xfer").contains(button)) return;
    const { action, sid, agent } = button.dataset;
    button.disabled = true;
    try {
      await api("POST", `/supervisor/calls/${encodeURIComponent(sid)}/${action}`);
      ui.said = tr(action === "monitor" ? "monitoring" : "barging", { agent });
    } catch (err) {
      ui.said = tr("sup_error", { agent, detail: err.status === 0 ? tr("err_network") : err.detail });
    } finally {
      button.disabled = false;
    }
    const said = $("sup-xfer-said");
    if (said) said.textContent = ui.said;
  }

  // --- following the console -------------------------------------------------------------

  function reset() {
    ui.ctx = null;
    ui.status = null;
    ui.held = false;
    ui.heldAt = null;
    ui.transfer = null;
    ui.message = null;
    ui.formOpen = false;
    const panel = $("xfer");
    if (panel) {
      $("xfer-form").hidden = true;
      $("xfer-open").setAttribute("aria-expanded", "false");
      $("xfer-error").textContent = "";
      $("xfer-form-error").textContent = "";
    }
    render();
  }

  document.addEventListener("console:stream", (e) => {
    const source = e.detail;
    source.addEventListener("hold", onHoldEvent);
    source.addEventListener("transfer", onTransferEvent);
    source.addEventListener("call", onCallEvent);
  });
  document.addEventListener("console:me", (e) => { ui.me = e.detail; });
  document.addEventListener("console:screenpop", (e) => {
    const ctx = e.detail;
    if (!ui.ctx || ui.ctx.call_sid !== ctx.call_sid) {
      reset();
      ui.status = $("call-status")?.dataset.status || null;  // console.js set it just before
    }
    ui.ctx = ctx;
    if (typeof ctx.held === "boolean") setHold(ctx.held, ctx.held_at);
    if (ctx.open_transfer) setTransfer(ctx.open_transfer);  // a reload mid-transfer
    render();
  });
  document.addEventListener("console:status", (e) => {
    ui.status = e.detail;
    // console.js has no words for a transferred call (it shows the status as it is).
    if (ui.status === "transferred") $("call-status").textContent = tr("transferred_status");
    render();
  });
  document.addEventListener("console:clear", reset);
  document.addEventListener("console:board", (e) => {
    ui.lastBoard = e.detail || {};
    renderBoard(ui.lastBoard);
  });
  document.addEventListener("click", (e) => {
    if (e.target instanceof Element && e.target.closest("#sup-xfer")) supervise(e);
  });

  function init() {
    build();
    I18N.onChange(() => {
      const open = ui.formOpen;
      build();
      ui.board = "";
      if (open) openForm(true);
      render();
      if (ui.lastBoard) renderBoard(ui.lastBoard);
    });
    render();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
}());
