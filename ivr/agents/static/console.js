// The agent console: sign-in, state, the live screen-pop (Server-Sent Events), wrap-up,
// and the supervisor's view. Plain DOM: every piece of data goes in through textContent
// or an attribute, never through HTML parsing, so a customer's name or an agent's note
// can never become markup or script.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  // Other console scripts (transfers.js) follow the console through DOM events on the
  // document: console:stream, console:me, console:screenpop, console:status, console:clear,
  // console:board.
  const hook = (name, detail) => document.dispatchEvent(new CustomEvent(`console:${name}`, { detail }));

  // Every word on screen comes from the catalogs (ivr/i18n/catalogs/console.json) through
  // t(key): the agent's language, Hebrew right to left (i18n.js).
  const { t } = window.I18N;

  const LANGUAGES = { he: "common.language.he", en: "common.language.en",
    ar: "common.language.ar", ru: "common.language.ru" };
  const STATE_LABELS = {
    offline: "console.state.offline", available: "console.state.available",
    reserved: "console.state.reserved", on_call: "console.state.on_call",
    wrap_up: "console.state.wrap_up",
  };
  const CALL_LABELS = {
    ringing: "console.call.ringing", answered: "console.call.answered",
    ended: "console.call.ended", missed: "console.call.missed",
  };
  const OUTCOME_LABELS = {
    known: null, ambiguous: "console.outcome.ambiguous", unknown: "console.outcome.unknown",
    withheld: "console.outcome.withheld", account: "console.outcome.account",
  };
  /** A label from one of the maps above, or the value itself when it has none. */
  const label = (map, value) => (map[value] ? t(map[value]) : value);

  const ui = {
    me: null,           // the signed-in agent (Me)
    zone: null,         // the centre's time zone, as the server said
    events: null,       // EventSource
    context: null,      // the screen-pop on screen (Context)
    callStatus: null,   // ringing / answered / ended
    done: new Set(),    // calls already wrapped up or missed: replays of them are ignored
    supervisorTimer: null,
    tick: null,
  };

  // --- DOM helpers: text only -------------------------------------------------------------

  /** createElement with attributes and children; strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** Text that came from a customer, an agent or a menu: its own direction. */
  const txt = (value, tag = "span", cls = null) =>
    el(tag, { dir: "auto", class: cls }, value === null || value === undefined ? "" : value);

  /** A phone number: left to right even in a Hebrew line ("+972…", not "…972+"). */
  const phone = (value) => el("span", { dir: "ltr", class: "phone" }, value);
  /** Items with " · " between them. */
  const joined = (items) => items.flatMap((item, i) => (i ? [" · ", item] : [item]));

  function fill(node, ...children) {
    node.replaceChildren();
    append(node, children);
  }

  function show(node, visible) { node.hidden = !visible; }

  // --- formatting --------------------------------------------------------------------------

  // Every time on screen is in the centre's time zone (the server says which: /agent/me,
  // the board), never the browser's: a deadline reads as the caller was told it. Until the
  // zone is known (or if this browser does not know it) the browser's own zone is used.
  const FORMATS = {
    time: { hour: "2-digit", minute: "2-digit" },
    seconds: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
    dateTime: { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
    full: { dateStyle: "full", timeStyle: "short" },
  };
  const PARTS = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  let fmt = formats(undefined);

  function formats(timeZone) {
    const make = (locale, options) => new Intl.DateTimeFormat(locale, { ...options, timeZone });
    const out = { parts: make("en-US", PARTS) };
    // The agent's language in the centre's region (he-IL, en-IL): Hebrew dates, 24-hour times.
    for (const [name, options] of Object.entries(FORMATS)) out[name] = make(window.I18N.locale, options);
    return out;
  }

  /** The centre's zone (an IANA name such as "Asia/Jerusalem"), said on screen. */
  function setZone(zone) {
    if (!zone || zone === ui.zone) return;
    try {
      fmt = formats(zone);
    } catch {  // a zone this browser does not know: its own, and say so
      fmt = formats(undefined);
      ui.zone = zone;
      $("zone").textContent = t("console.zone.unknown", { zone });
      $("wu-due-label").textContent = t("console.wrapup.due_browser");
      return;
    }
    ui.zone = zone;
    $("zone").textContent = t("console.zone.known", { zone });
    $("wu-due-label").textContent = t("console.wrapup.due_zone", { zone });
  }

  /** Year, month, …, second of an instant on the centre's wall clock. */
  function wall(d) {
    const p = {};
    for (const { type, value } of fmt.parts.formatToParts(d)) p[type] = Number(value);
    return p;
  }

  /** The instant a wall-clock time in the centre's zone ("2026-11-24T12:00", as a
   *  datetime-local input gives it) stands for; across a DST change, the later offset. */
  function instantOf(local) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(local || "");
    if (!m) return null;
    const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    const offset = (t) => {
      const p = wall(new Date(t));
      return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second) - t;
    };
    const guess = asUtc - offset(asUtc);
    return new Date(asUtc - offset(guess));
  }

  function parse(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function sameDay(a, b) {
    const x = wall(a); const y = wall(b);
    return x.year === y.year && x.month === y.month && x.day === y.day;
  }

  /** A moment in the centre's time: "14:05" today, "Mon 23 Nov, 14:05" otherwise. */
  function when(iso) {
    const d = parse(iso);
    if (!d) return "—";
    return sameDay(d, new Date()) ? fmt.time.format(d) : fmt.dateTime.format(d);
  }

  /** "3 min 20 s", "45 s", "2 h 5 min", "3 d 4 h". */
  function duration(totalSeconds) {
    if (totalSeconds === null || totalSeconds === undefined || Number.isNaN(totalSeconds)) return "—";
    let s = Math.max(0, Math.round(totalSeconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return h ? t("console.dur.d_h", { d, h }) : t("console.dur.d", { d });
    if (h) return m ? t("console.dur.h_m", { h, m }) : t("console.dur.h", { h });
    if (m) return s ? t("console.dur.m_s", { m, s }) : t("console.dur.m", { m });
    return t("console.dur.s", { s });
  }

  /** "55 minutes ago", "2 hours ago", "3 days ago", "in 20 minutes". */
  function ago(iso) {
    const d = parse(iso);
    if (!d) return "";
    return relative((Date.now() - d.getTime()) / 1000);
  }

  function relative(seconds) {
    const s = Math.abs(seconds);
    if (s < 60) return t(seconds < 0 ? "console.time.under_a_minute" : "console.time.just_now");
    return t(seconds < 0 ? "console.time.in" : "console.time.ago", { span: span(s) });
  }

  /** "55 minutes", "2 hours", "3 days" (rounded to the largest unit). */
  function span(seconds) {
    const s = Math.abs(seconds);
    if (s < 3600) return t("console.span.minute", { count: Math.max(1, Math.round(s / 60)) });
    if (s < 86400 * 2) return t("console.span.hour", { count: Math.round(s / 3600) });
    return t("console.span.day", { count: Math.round(s / 86400) });
  }

  /** How long ago an instant was, without "ago": "2 hours". */
  function since(iso) {
    const d = parse(iso);
    return d ? span((Date.now() - d.getTime()) / 1000) : "";
  }

  function minutesAgo(minutes) {
    if (minutes === null || minutes === undefined) return "";
    return relative(minutes * 60);
  }

  const language = (code) => (code ? label(LANGUAGES, String(code).split("-")[0].toLowerCase()) || code : "—");
  const yesNo = (v) => (v === true ? t("common.yes") : v === false ? t("common.no") : "—");

  // --- HTTP --------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, body) {
      super(typeof body?.detail === "string" ? body.detail : t("console.error.http", { status }));
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 204) return null;
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { detail: text }; }
    }
    if (!response.ok) {
      if (response.status === 401 && path !== "/agent/login") signedOut(t("console.session_ended"));
      const error = new HttpError(response.status, data);
      error.retryAfter = Number(response.headers.get("Retry-After")) || null;
      throw error;
    }
    return data;
  }

  function notice(message, kind = "info") {
    const node = $("notice");
    node.textContent = message || "";
    node.dataset.kind = kind;
    show(node, Boolean(message));
  }

  // --- sign-in -----------------------------------------------------------------------------

  function showLogin(message) {
    show($("bar"), false);
    show($("console"), false);
    show($("login"), true);
    $("login-error").textContent = message || "";
    $("password").value = "";
    $("username").focus();
  }

  async function login(event) {
    event.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!username || !password) {
      $("login-error").textContent = t("console.login.missing");
      return;
    }
    $("login-submit").disabled = true;
    $("login-error").textContent = "";
    try {
      const data = await api("POST", "/agent/login", { username, password });
      $("password").value = "";
      start(data.agent);
    } catch (err) {
      // The server's refusals in the agent's words (its detail is English).
      $("login-error").textContent = err.status === 401 ? t("console.login.wrong")
        : err.status === 429 ? t("console.login.throttled", { seconds: err.retryAfter || 60 })
          : err.status === 503 ? t("console.login.busy")
            : t("console.login.failed", { reason: err.message });
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function logout() {
    try { await api("POST", "/agent/logout"); } catch { /* signed out either way */ }
    signedOut("");
  }

  function signedOut(message) {
    if (ui.events) { ui.events.close(); ui.events = null; }
    if (ui.supervisorTimer) { clearTimeout(ui.supervisorTimer); ui.supervisorTimer = null; }
    ui.me = null;
    clearCall();
    showLogin(message);
  }

  /** Signed in: header, the pop's event stream, the supervisor's view for admins. */
  function start(me) {
    show($("login"), false);
    show($("bar"), true);
    show($("console"), true);
    notice("");
    setMe(me);
    pruneDrafts(me.current_call_sid);
    connect();
    if (me.current_call_sid && !ui.context) {
      const status = { on_call: "answered", wrap_up: "ended" }[me.state] || "ringing";
      loadContext(me.current_call_sid, status);
    }
    if (me.role === "admin") startSupervisor();
    $("toggle-available").focus();
  }

  // --- the agent's state -------------------------------------------------------------------

  function setMe(me) {
    ui.me = me;
    // The agent's language, kept with the agent (none chosen: the centre's).
    const wanted = me.language || window.I18N.defaultLanguage;
    if (wanted !== window.I18N.lang) { window.I18N.setLanguage(wanted); return; }  // redraws
    $("language-switch").value = wanted;
    setZone(me.timezone);
    $("agent-name").textContent = me.name || me.username;
    // A supervisor who answers no queue takes no calls: "Supervisor", not "Offline".
    const takesCalls = me.role !== "admin" || (me.queues || []).length > 0;
    const badge = $("state-badge");
    badge.dataset.state = takesCalls ? me.state : "supervisor";
    badge.textContent = takesCalls ? label(STATE_LABELS, me.state) : t("console.state.supervisor");
    const toggle = $("toggle-available");
    const busy = me.state === "reserved" || me.state === "on_call";
    toggle.dataset.action = me.state === "offline" ? "available" : "offline";
    toggle.textContent = t(me.state === "offline" ? "console.toggle.available" : "console.toggle.offline");
    toggle.disabled = busy;
    toggle.title = busy ? t("console.toggle.busy") : "";
    toggle.setAttribute("aria-pressed", me.state === "offline" ? "false" : "true");
    show(toggle, takesCalls);  // nothing to go available for
    $("idle").classList.toggle("gone", !takesCalls);
    if (!ui.context) idle();
    tickState();
    hook("me", me);
  }

  function tickState() {
    const since = $("state-badge").dataset.state !== "supervisor" && parse(ui.me?.state_since);
    $("state-time").textContent = since ? duration((Date.now() - since.getTime()) / 1000) : "";
  }

  async function toggleState() {
    const target = $("toggle-available").dataset.action;
    $("toggle-available").disabled = true;
    try {
      setMe(await api("POST", "/agent/state", { state: target }));
      notice("");
    } catch (err) {
      if (err.status !== 401) notice(t("console.state.failed", { reason: err.message }), "error");
      if (ui.me) setMe(ui.me);
    }
  }

  function idle() {
    const state = ui.me?.state;
    fill($("idle-title"), t(state === "available" ? "console.idle.waiting" : "console.idle.no_call"));
    fill($("idle-text"), state === "offline"
      ? window.I18N.nodes("console.idle.offline", { available: el("strong", {}, t("console.toggle.available")) })
      : state === "available" ? t("console.idle.available") : "");
  }

  // --- the event stream --------------------------------------------------------------------

  function connect() {
    if (ui.events) ui.events.close();
    const source = new EventSource("/agent/events");
    ui.events = source;
    source.addEventListener("open", () => { setConnection(""); });
    source.addEventListener("error", () => {
      if (ui.events !== source) return;
      setConnection(t("console.reconnecting"));
      // The stream cannot tell us why it failed: a session that ended is a 401 here.
      if (source.readyState === EventSource.CLOSED) {
        api("GET", "/agent/me").then((me) => { setMe(me); connect(); }).catch(() => {});
      } else {
        api("GET", "/agent/me").catch(() => {});
      }
    });
    source.addEventListener("state", (e) => { const me = data(e); if (me) setMe(me); });
    source.addEventListener("screenpop", (e) => { const ctx = data(e); if (ctx) screenpop(ctx); });
    source.addEventListener("call", (e) => { const c = data(e); if (c) callChanged(c); });
    source.addEventListener("callback", (e) => { const c = data(e); if (c) callbackAlert(c); });
    hook("stream", source);
  }

  function data(event) {
    try { return JSON.parse(event.data); } catch { return null; }
  }

  function setConnection(text) {
    $("connection").textContent = text;
  }

  async function loadContext(callSid, status) {
    try {
      const ctx = await api("GET", `/agent/calls/${encodeURIComponent(callSid)}/context`);
      if (ui.context && ui.context.call_sid === callSid) return;  // the stream was first
      screenpop({ ...ctx, status });
    } catch { /* not ours, or gone: nothing to show */ }
  }

  function callChanged(change) {
    if (!ui.context || change.call_sid !== ui.context.call_sid) {
      if (change.status === "missed") notice(t("console.call.missed_elsewhere"), "error");
      return;
    }
    if (change.status === "missed") {
      finished(change.call_sid);
      clearCall();
      notice(t("console.call.not_answered"), "error");
      return;
    }
    if (change.status === "ended" && ui.callStatus === "ringing") {
      finished(change.call_sid);
      clearCall();
      notice(t("console.call.hung_up"), "info");
      return;
    }
    setCallStatus(change.status);
  }

  function setCallStatus(status) {
    ui.callStatus = status;
    const node = $("call-status");
    node.dataset.status = status;
    node.textContent = label(CALL_LABELS, status);
    hook("status", status);
    if (status === "ended") $("wu-topic").focus();
  }

  // --- the screen-pop ----------------------------------------------------------------------

  function screenpop(ctx) {
    if (ui.done.has(ctx.call_sid)) return;  // a replay of a call already wrapped up
    const fresh = !ui.context || ui.context.call_sid !== ctx.call_sid;
    ui.context = ctx;
    notice("");
    show($("idle"), false);
    show($("call"), true);
    $("call").dataset.callSid = ctx.call_sid;
    if (fresh) resetWrapup();
    if (fresh || !ui.callStatus) setCallStatus(CALL_LABELS[ctx.status] ? ctx.status : "ringing");
    renderIdentity(ctx);
    renderBanners(ctx);
    renderIncidents(ctx.open_incidents || []);
    renderPromises(ctx.promises || []);
    renderContact(ctx);
    renderInteractions(ctx.interactions || []);
    renderCallbacks(ctx.pending_callbacks || []);
    renderPath(ctx.ivr_path || []);
    renderWrapupChoices(ctx);
    if (fresh) restoreDraft(ctx.call_sid);
    hook("screenpop", ctx);
    if (fresh) {
      document.title = callTitle(ctx);
      // The offer reserved us; the header shows it (the stream may not say so itself).
      api("GET", "/agent/me").then(setMe).catch(() => {});
    }
  }

  const callTitle = (ctx) => t("console.title.call", { name: ctx.customer?.name || t("console.unknown_caller") });

  function clearCall() {
    ui.context = null;
    ui.callStatus = null;
    show($("call"), false);
    show($("idle"), true);
    delete $("call").dataset.callSid;
    document.title = t("console.title");
    idle();
    hook("clear");
  }

  function renderIdentity(ctx) {
    const customer = ctx.customer;
    const caller = ctx.caller || {};
    const name = $("caller-name");
    const sub = $("caller-sub");
    const tags = $("caller-tags");
    tags.replaceChildren();
    if (customer) {
      name.textContent = customer.name || t("console.pop.name_missing");
      name.classList.toggle("unknown", false);
      const bits = [];
      if (customer.account_number) bits.push(t("console.pop.account", { account: customer.account_number }));
      if (caller.number) bits.push(phone(caller.number));
      fill(sub, joined(bits));
      if (OUTCOME_LABELS[caller.outcome]) sub.append(el("span", { class: "muted" }, ` · ${label(OUTCOME_LABELS, caller.outcome)}`));
      if (customer.tier) tags.append(el("li", { class: `tag tier tier-${customer.tier}` }, txt(customer.tier)));
      if (customer.segment) tags.append(el("li", { class: "tag" }, txt(customer.segment)));
      if (customer.status && customer.status !== "active") {
        tags.append(el("li", { class: "tag warn" }, txt(customer.status)));
      }
      tags.append(el("li", { class: "tag" }, t("console.pop.speaks", { language: language(customer.preferred_language || ctx.language) })));
    } else {
      name.textContent = t("console.unknown_caller");
      name.classList.toggle("unknown", true);
      const bits = [];
      bits.push(caller.outcome === "withheld" ? t("console.outcome.withheld")
        : (caller.number ? phone(caller.number) : t("console.pop.no_number")));
      if (OUTCOME_LABELS[caller.outcome] && caller.outcome !== "withheld") bits.push(label(OUTCOME_LABELS, caller.outcome));
      fill(sub, joined(bits));
      if (caller.typed_account) {
        tags.append(el("li", { class: "tag warn" },
          window.I18N.nodes("console.pop.typed_account", { account: txt(caller.typed_account) })));
      }
      for (const c of caller.candidates || []) {
        tags.append(el("li", { class: "tag" }, window.I18N.nodes("console.pop.maybe", { name: txt(c.name || `#${c.id}`) }),
          c.account_number ? t("console.pop.maybe_account", { account: c.account_number }) : ""));
      }
    }
    $("waited").textContent = duration(ctx.waited_seconds);
    $("waited").title = ctx.entered_queue_at ? t("console.pop.joined_at", { time: when(ctx.entered_queue_at) }) : "";
    $("queue").textContent = ctx.queue || "—";
    $("language").textContent = language(ctx.language);
  }

  function banner(kind, title, ...body) {
    return el("div", { class: `banner ${kind}`, role: kind === "danger" ? "alert" : null },
      el("strong", { class: "banner-title" }, title), body.length ? " — " : "", ...body);
  }

  function renderBanners(ctx) {
    const out = [];
    const repeat = ctx.repeat || {};
    if (repeat.is_repeat) {
      const parts = [];
      if (repeat.minutes_since_last_call !== null && repeat.minutes_since_last_call !== undefined) {
        parts.push(t("console.banner.called", { when: minutesAgo(repeat.minutes_since_last_call) }));
      }
      const about = repeat.last_topic
        ? window.I18N.nodes("console.banner.about", { topic: txt(repeat.last_topic, "span", "topic") }) : [];
      const body = parts.length || about.length ? [parts.join(""), ...about] : [txt(repeat.text || "")];
      out.push(el("div", { class: "banner repeat", id: "repeat-banner" },
        el("strong", { class: "banner-title" }, t("console.banner.repeat")), " — ", ...body));
    }
    const risk = ctx.leaving_risk || {};
    if (risk.flag) {
      const reasons = (risk.reasons || []).map((r) => txt(r));
      const joined = [];
      reasons.forEach((r, i) => { if (i) joined.push("; "); joined.push(r); });
      const b = banner("danger", t("console.banner.risk"), ...(joined.length ? joined : [t("console.banner.may_leave")]));
      b.id = "risk-banner";
      out.push(b);
    }
    const overdue = (ctx.promises || []).filter((p) => p.overdue);
    if (overdue.length) {
      const b = banner("danger", t("console.banner.overdue", { count: overdue.length }),
        txt(overdue[0].action), overdue.length > 1 ? t("console.banner.and_more", { count: overdue.length - 1 }) : "");
      b.id = "overdue-banner";
      out.push(b);
    }
    const cb = ctx.callback;
    if (cb) {
      const b = banner(cb.seconds_left < 0 ? "danger" : "info", t("console.banner.callback"),
        t("console.banner.cb_promised", { time: when(cb.deadline_at) }),
        cb.seconds_left < 0 ? t("console.banner.cb_overdue", { span: duration(-cb.seconds_left) })
          : t("console.banner.cb_left", { span: duration(cb.seconds_left) }),
        t("console.banner.cb_attempt", { attempt: cb.attempt, max: cb.max_attempts }),
        cb.kind === "scheduled" ? t("console.banner.cb_scheduled") : "",
        cb.other_number ? t("console.banner.cb_other_number") : "");
      b.id = "callback-banner";
      out.push(b);
    }
    const incidents = ctx.open_incidents || [];
    if (incidents.length) {
      const first = incidents[0];
      const where = first.branch || first.source;
      const b = banner("info", t("console.banner.incidents", { count: incidents.length }),
        txt(first.summary || first.category || t("console.incident")),
        where ? window.I18N.nodes("console.banner.at", { place: txt(where) }) : "",
        t("console.banner.opened", { when: ago(first.opened_at) }));
      b.id = "incident-banner";
      out.push(b);
    }
    fill($("banners"), out);
  }

  function table(caption, headers, rows, cls) {
    if (!rows.length) return el("p", { class: "empty" }, caption);
    return el("table", { class: cls || null },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows));
  }

  function timeCell(iso) {
    const d = parse(iso);
    return el("td", { class: "time" },
      d ? el("time", { datetime: iso, title: fmt.full.format(d) }, when(iso)) : "—",
      d ? el("span", { class: "ago" }, ago(iso)) : "");
  }

  function renderIncidents(incidents) {
    fill($("incidents"), table(t("console.incidents.empty"), [t("console.incidents.opened"),
      t("console.incidents.where"), t("console.incidents.what"), t("console.incidents.last_update")],
      incidents.map((i) => el("tr", { class: "incident", dataset: { id: i.id } },
        timeCell(i.opened_at),
        el("td", {}, txt(i.branch || i.source, "span", "strong"),
          i.branch && i.source && i.branch !== i.source ? el("span", { class: "muted block" }, txt(i.source)) : ""),
        el("td", {}, txt(i.category, "span", "strong"), i.summary ? txt(i.summary, "span", "block") : ""),
        timeCell(i.last_update_at))), "incidents"));
  }

  function renderPromises(promises) {
    fill($("promises"), table(t("console.promises.empty"),
      [t("console.promises.due"), t("console.promises.action"), t("console.promises.by")],
      promises.map((p) => el("tr", { class: p.overdue ? "promise overdue" : "promise" },
        el("td", { class: "time" },
          p.due_at ? el("time", { datetime: p.due_at }, when(p.due_at)) : t("console.promises.no_date"),
          p.overdue ? el("span", { class: "overdue-label" }, t("console.promises.overdue", { span: since(p.due_at) })) :
            p.due_at ? el("span", { class: "ago" }, ago(p.due_at)) : ""),
        el("td", {}, txt(p.action)),
        el("td", {}, txt(p.agent || "—", "span", "who")))), "promises"));
  }

  function renderContact(ctx) {
    const rows = [
      [t("console.contact.inbound"), ctx.last_inbound_at],
      [t("console.contact.outbound"), ctx.last_outbound_at],
    ];
    fill($("contact"), rows.map(([label, iso]) => [
      el("dt", {}, label),
      el("dd", {}, iso ? [el("time", { datetime: iso }, when(iso)), " ", el("span", { class: "ago" }, `(${ago(iso)})`)] : t("console.contact.never")),
    ]));
  }

  function renderInteractions(interactions) {
    const arrow = (d) => (d === "out" ? t("console.direction.out") : d === "in" ? t("console.direction.in") : d || "");
    fill($("interactions"), table(t("console.interactions.empty"),
      [t("console.interactions.when"), t("console.interactions.channel"), t("console.interactions.topic"),
        t("console.interactions.agent"), t("console.interactions.outcome"), t("console.interactions.resolved")],
      interactions.map((i) => {
        const row = el("tr", { class: "interaction", dataset: { id: i.id } },
          timeCell(i.started_at),
          el("td", {}, i.channel || "", el("span", { class: "muted block" }, arrow(i.direction))),
          el("td", {}, txt(i.topic || "—", "span", "strong"),
            i.notes ? txt(i.notes, "span", "block notes") : ""),
          el("td", {}, txt(i.agent || "—", "span", "who"),
            i.queue || i.source ? el("span", { class: "muted block" }, txt(i.queue || i.source)) : ""),
          el("td", {}, txt(i.outcome || "—"),
            i.leaving_reason ? el("span", { class: "block unresolved" },
              window.I18N.nodes("console.interactions.leaving", { reason: txt(i.leaving_reason) })) : ""),
          el("td", { class: i.resolved === false ? "unresolved" : null }, yesNo(i.resolved)));
        return row;
      }), "interactions"));
  }

  function renderCallbacks(callbacks) {
    fill($("callbacks"), callbacks.length
      ? el("ul", { class: "plain" }, callbacks.map((c) => {
        if (typeof c !== "object" || c === null) return el("li", {}, txt(String(c)));
        const due = c.due_at || c.deadline_at || c.deadline || c.sla_due_at;
        const parts = [];
        if (due) parts.push(el("strong", {}, t("console.callbacks.due", { time: when(due) })), " ");
        if (c.status) parts.push(el("span", { class: "tag" }, txt(c.status)), " ");
        if (c.number || c.phone) parts.push(phone(c.number || c.phone), " ");
        if (c.reason || c.topic) parts.push(txt(c.reason || c.topic));
        return el("li", {}, parts.length ? parts : txt(JSON.stringify(c)));
      }))
      : el("p", { class: "empty" }, t("console.callbacks.empty")));
  }

  function renderPath(path) {
    fill($("ivr-path"), path.length
      ? el("ol", { class: "path" }, path.map((step) => {
        const input = [];
        if (step.option) input.push(t("console.path.pressed", { key: step.option }));
        else if (step.digits) input.push(t("console.path.typed", { digits: step.digits }));
        if (step.speech) input.push(window.I18N.nodes("console.path.said", { speech: txt(step.speech) }));
        return el("li", {},
          el("time", { datetime: step.at || "", class: "time" }, step.at ? fmt.seconds.format(parse(step.at)) : ""),
          " ",
          txt([step.menu, step.node].filter(Boolean).join(" › "), "span", "strong"),
          step.kind ? el("span", { class: "muted" }, ` (${step.kind})`) : "",
          input.length ? [" — ", input] : "",
          step.seconds >= 1 ? el("span", { class: "ago" }, ` ${duration(step.seconds)}`) : "");
      }))
      : el("p", { class: "empty" }, t("console.path.empty")));
  }

  // --- wrap-up -----------------------------------------------------------------------------

  const WRAPUP_FIELDS = {
    topic: "wu-topic", outcome: "wu-outcome", resolved: "wu-resolved",
    promised_action: "wu-promise", promised_due_at: "wu-due", leaving_reason: "wu-leaving",
    notes: "wu-notes", leaving_text: "wu-leaving-text",
  };

  /** A checkbox per open incident (close it) and per outstanding promise (kept); ticks
   *  survive a re-render of the same call. */
  function renderWrapupChoices(ctx) {
    const build = (boxId, setId, prefix, items, label) => {
      const box = $(boxId);
      const ticked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
      box.replaceChildren(...items.map((item) => {
        const value = String(item.key);
        const id = `${prefix}-${value}`;
        return el("div", { class: "check" },
          el("input", { type: "checkbox", id, value, checked: ticked.has(value) }),
          el("label", { for: id }, label(item)));
      }));
      show($(setId), items.length > 0);
    };
    build("wu-incidents", "wu-incidents-set", "wu-close",
      (ctx.open_incidents || []).map((i) => ({ ...i, key: i.id })),
      (i) => [txt(i.category || t("console.incident"), "span", "strong"), i.summary ? [" — ", txt(i.summary)] : "",
        el("span", { class: "muted" }, " (", txt(i.branch || i.source || ""), ")")]);
    build("wu-kept", "wu-kept-set", "wu-kept",
      (ctx.promises || []).filter((p) => p.interaction_id !== null && p.interaction_id !== undefined)
        .map((p) => ({ ...p, key: p.interaction_id })),
      (p) => [txt(p.action), p.due_at ? el("span", { class: p.overdue ? "unresolved" : "muted" }, t("console.wrapup.due", { time: when(p.due_at) })) : ""]);
  }

  const ticked = (boxId) => [...$(boxId).querySelectorAll("input:checked")]
    .map((i) => Number(i.value)).filter(Number.isInteger);

  function resetWrapup() {
    $("wu-incidents").replaceChildren();
    $("wu-kept").replaceChildren();
    $("wrapup-form").reset();
    clearErrors();
    $("wrapup-submit").disabled = false;
  }

  // The wrap-up being typed is kept in this tab (sessionStorage, per agent and call) as it
  // is typed, so a reload or signing in again brings it back; it is dropped once the call
  // is wrapped up (or has nothing to wrap up), and never outlives the tab.
  const DRAFT_PREFIX = "ivr-wrapup-draft:";
  const draftKey = (callSid) => `${DRAFT_PREFIX}${ui.me?.id}:${callSid}`;

  function saveDraft() {
    if (!ui.context || !ui.me) return;
    const draft = {};
    for (const [field, id] of Object.entries(WRAPUP_FIELDS)) {
      if (!$(id)) continue;  // a field another script adds (retention.js) once it has its lists
      draft[field] = $(id).type === "checkbox" ? $(id).checked : $(id).value;
    }
    draft.close_incidents = ticked("wu-incidents");
    draft.kept_promises = ticked("wu-kept");
    try { sessionStorage.setItem(draftKey(ui.context.call_sid), JSON.stringify(draft)); } catch { /* storage off or full: not kept */ }
  }

  function restoreDraft(callSid) {
    let draft = null;
    try { draft = JSON.parse(sessionStorage.getItem(draftKey(callSid)) || "null"); } catch { /* unreadable: none */ }
    if (!draft || typeof draft !== "object") return;
    for (const [field, id] of Object.entries(WRAPUP_FIELDS)) {
      const value = draft[field];
      if (!$(id)) continue;
      if ($(id).type === "checkbox") $(id).checked = value === true;
      else if (typeof value === "string") $(id).value = value;
    }
    const tick = (boxId, values) => {
      const wanted = new Set((Array.isArray(values) ? values : []).map(String));
      for (const box of $(boxId).querySelectorAll("input[type=checkbox]")) {
        if (wanted.has(box.value)) box.checked = true;
      }
    };
    tick("wu-incidents", draft.close_incidents);
    tick("wu-kept", draft.kept_promises);
  }

  function dropDraft(callSid) {
    try { sessionStorage.removeItem(draftKey(callSid)); } catch { /* storage off */ }
  }

  /** Signed in: drafts of this agent's other calls (over, or not ours any more) go. */
  function pruneDrafts(current) {
    try {
      const mine = `${DRAFT_PREFIX}${ui.me?.id}:`;
      for (const key of Object.keys(sessionStorage)) {
        if (key.startsWith(mine) && key !== `${mine}${current}`) sessionStorage.removeItem(key);
      }
    } catch { /* storage off */ }
  }

  /** A call is over for this console: its replays are ignored, its draft dropped. */
  function finished(callSid) {
    ui.done.add(callSid);
    dropDraft(callSid);
  }

  function clearErrors() {
    $("wrapup-error").textContent = "";
    for (const id of Object.values(WRAPUP_FIELDS)) {
      if (!$(id)) continue;
      $(id).removeAttribute("aria-invalid");
      const msg = $(`${id}-error`);
      if (msg) msg.textContent = "";
    }
  }

  function fieldError(field, message) {
    const id = WRAPUP_FIELDS[field];
    if (!id || !$(id)) return false;
    $(id).setAttribute("aria-invalid", "true");
    const msg = $(`${id}-error`);
    if (msg) msg.textContent = message;
    return true;
  }

  const blank = (v) => { const t = v.trim(); return t ? t : null; };

  async function submitWrapup(event) {
    event.preventDefault();
    if (!ui.context) return;
    clearErrors();
    const callSid = ui.context.call_sid;
    const due = $("wu-due").value;
    const body = {
      topic: $("wu-topic").value.trim(),
      outcome: $("wu-outcome").value.trim(),
      resolved: $("wu-resolved").checked,
      promised_action: blank($("wu-promise").value),
      // datetime-local is a wall clock (the centre's); the API wants an instant.
      promised_due_at: due ? (ui.zone ? instantOf(due) : new Date(due)).toISOString() : null,
      leaving_reason: $("wu-leaving").value || null,
      notes: blank($("wu-notes").value),
      close_incidents: ticked("wu-incidents"),
      kept_promises: ticked("wu-kept"),
    };
    let bad = false;
    // The exit interview's words and whether the customer stayed (retention.js).
    const retention = window.IVRRetention;
    if (retention) Object.assign(body, retention.wrapupFields());
    const exitProblem = retention && retention.problem();
    if (exitProblem) bad = fieldError("leaving_text", exitProblem) || bad;
    if (!body.topic) bad = fieldError("topic", t("console.wrapup.need_topic")) || bad;
    if (!body.outcome) bad = fieldError("outcome", t("console.wrapup.need_outcome")) || bad;
    if (body.promised_due_at && !body.promised_action) bad = fieldError("promised_action", t("console.wrapup.need_action")) || bad;
    if (body.promised_action && !body.promised_due_at) bad = fieldError("promised_due_at", t("console.wrapup.need_due")) || bad;
    if (bad) {
      $("wrapup-error").textContent = t("console.wrapup.complete_fields");
      const first = document.querySelector("#wrapup-form [aria-invalid=true]");
      if (first) first.focus();
      return;
    }
    $("wrapup-submit").disabled = true;
    try {
      const result = await api("POST", `/agent/calls/${encodeURIComponent(callSid)}/wrapup`, body);
      finished(callSid);
      clearCall();
      if (result && result.agent) setMe(result.agent);
      notice(t("console.wrapup.saved"), "ok");
      $("toggle-available").focus();
    } catch (err) {
      $("wrapup-submit").disabled = false;
      if (err.status === 404) {
        finished(callSid);
        clearCall();
        notice(t("console.wrapup.nothing"), "info");
        api("GET", "/agent/me").then(setMe).catch(() => {});
      } else if (err.status === 409) {
        finished(callSid);
        clearCall();
        notice(t("console.wrapup.already"), "info");
        api("GET", "/agent/me").then(setMe).catch(() => {});
      } else if (err.status === 422 && Array.isArray(err.body?.detail)) {
        const other = [];
        for (const d of err.body.detail) {
          const field = Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : null;
          if (!fieldError(field, d.msg)) other.push(d.msg);
        }
        $("wrapup-error").textContent = other.length ? other.join("; ") : t("console.wrapup.correct_fields");
      } else if (err.status === 422) {
        $("wrapup-error").textContent = err.message;
      } else if (err.status !== 401) {
        $("wrapup-error").textContent = t("console.wrapup.failed", { reason: err.message });
      }
    }
  }

  // --- supervisor --------------------------------------------------------------------------

  function startSupervisor() {
    show($("supervisor"), true);
    const poll = async () => {
      ui.supervisorTimer = null;
      if (!ui.me || ui.me.role !== "admin") return;
      try {
        ui.board = await api("GET", "/agent/supervisor");
        renderSupervisor(ui.board);
      } catch (err) {
        if (err.status === 403) { show($("supervisor"), false); return; }
        if (err.status === 401) return;
        $("supervisor-updated").textContent = t("console.sup.not_updated", { reason: err.message });
      }
      if (ui.me) ui.supervisorTimer = setTimeout(poll, 2000);
    };
    poll();
  }

  function renderSupervisor(data) {
    const at = parse(data.at) || new Date();
    setZone(data.timezone);
    $("supervisor-updated").textContent = t("console.sup.updated", { time: fmt.seconds.format(at) });
    // A supervisor who answers no queue takes no calls: no "offline agent" to list.
    const agents = (data.agents || []).filter((a) => a.role !== "admin" || (a.queues || []).length);
    fill($("sup-agents"), table(t("console.sup.no_agents"),
      [t("console.sup.agent"), t("console.sup.state"), t("console.sup.since"), t("console.sup.current_call")],
      agents.map((a) => el("tr", { dataset: { agentId: a.id } },
        el("td", {}, txt(a.name || a.username, "span", "strong who"),
          a.role === "admin" ? [" ", el("span", { class: "tag role" }, t("console.sup.role_supervisor"))] : "",
          el("span", { class: "muted block" }, txt((a.queues || []).join(", ")))),
        el("td", {}, el("span", { class: "badge", dataset: { state: a.state } }, label(STATE_LABELS, a.state))),
        el("td", { class: "time" }, when(a.state_since),
          el("span", { class: "ago" }, duration((at.getTime() - (parse(a.state_since)?.getTime() ?? at.getTime())) / 1000))),
        currentCall(a))), "sup-agents"));
    renderQueues(data.queues || [], agents);
    renderSupervisorCallbacks(data.callbacks, at);
    hook("board", data);
  }

  /** Whom the agent is talking to and in which queue (the CallSid only on hover). */
  function currentCall(a) {
    if (!a.current_call_sid) return el("td", {}, "—");
    const c = a.call || {};
    return el("td", { class: "current-call", title: a.current_call_sid },
      txt(c.caller || t("console.unknown_caller"), "span", "strong who"),
      c.callback ? el("span", { class: "muted" }, t("console.sup.on_callback")) : "",
      c.queue ? txt(c.queue, "span", "muted block") : "");
  }

  /** Queues with callers waiting, then the other queues agents answer, at zero. */
  function renderQueues(queues, agents) {
    const waiting = new Map(queues.map((q) => [q.queue, q]));
    const idle = [...new Set(agents.flatMap((a) => a.queues || []))]
      .filter((name) => !waiting.has(name)).sort();
    const out = [];
    if (!queues.some((q) => q.waiting)) {
      out.push(el("p", { class: "empty" }, t(idle.length ? "console.sup.no_calls" : "console.sup.no_calls_hint")));
    }
    for (const q of [...queues, ...idle.map((name) => ({ queue: name, waiting: 0, calls: [] }))]) {
      out.push(el("div", { class: "queue", dataset: { queue: q.queue, waiting: q.waiting } },
        el("h4", {}, txt(q.queue), " ",
          el("span", { class: "count" }, t("console.sup.waiting", { count: q.waiting })),
          q.waiting ? el("span", { class: "muted" }, t("console.sup.longest", { span: duration(q.longest_wait_seconds) })) : ""),
        (q.calls || []).length ? table("", [t("console.sup.caller"), t("console.sup.priority"),
          t("console.sup.waited"), t("console.sup.status")],
          q.calls.map((c) => el("tr", {},
            el("td", {}, txt(c.customer_name || t("console.unknown_caller"))),
            el("td", {}, String(c.priority ?? "")),
            el("td", {}, duration(c.waited_seconds)),
            el("td", {}, txt(c.status || ""))))) : ""));
    }
    fill($("sup-queues"), out);
  }

  const ALERT_TITLES = { warning: "console.sup.alert.warning", breach: "console.sup.alert.breach",
    failed: "console.sup.alert.failed" };

  function callbackAlert(c) {
    if (!ui.me || ui.me.role !== "admin") return;
    const item = el("p", { class: `banner ${c.kind === "warning" ? "info" : "danger"}`,
      dataset: { request: c.request_id, kind: c.kind } },
      el("strong", { class: "banner-title" }, ALERT_TITLES[c.kind] ? t(ALERT_TITLES[c.kind]) : txt(c.kind)),
      window.I18N.nodes("console.sup.alert.body", { id: c.request_id, queue: txt(c.queue || ""),
        time: when(c.deadline_at) }));
    const box = $("sup-alerts");
    box.prepend(item);
    while (box.children.length > 5) box.lastElementChild.remove();
  }

  function renderSupervisorCallbacks(cb, at) {
    if (!cb) { fill($("sup-callbacks"), el("p", { class: "empty" }, t("console.sup.callbacks_off"))); return; }
    const today = cb.today || {};
    const att = today.attainment === null || today.attainment === undefined
      ? t("console.sup.no_deadline") : t("console.sup.kept", { percent: (today.attainment * 100).toFixed(1) });
    $("sup-sla").textContent = t("console.sup.sla", { attainment: att, completed: today.completed || 0,
      failed: today.failed || 0, open: cb.open.length, at_risk: cb.at_risk, overdue: cb.overdue });
    ui.callbackDeadlines = (cb.open || []).map((c) => ({ id: c.id, deadline: parse(c.deadline_at) }));
    fill($("sup-callbacks"), table(t("console.sup.no_callbacks"),
      ["#", t("console.sup.queue"), t("console.sup.number"), t("console.sup.status"), t("console.sup.deadline"),
        t("console.sup.left"), t("console.sup.attempts")],
      (cb.open || []).map((c) => el("tr", {
        class: c.overdue ? "overdue" : c.at_risk ? "at-risk" : "",
        dataset: { request: c.id } },
      el("td", { class: "mono" }, String(c.id)),
      el("td", {}, txt(c.queue)),
      el("td", { class: "mono" }, phone(c.phone)),
      el("td", {}, txt(c.kind === "scheduled" ? t("console.sup.scheduled", { status: c.status }) : c.status)),
      el("td", { class: "time" }, when(c.deadline_at)),
      el("td", { class: "countdown", dataset: { deadline: c.deadline_at } }, countdown(c.deadline_at, at)),
      el("td", {}, String(c.attempts)))), "sup-callbacks"));
  }

  function countdown(iso, now) {
    const left = Math.round(((parse(iso)?.getTime() ?? now.getTime()) - now.getTime()) / 1000);
    return left < 0 ? t("console.sup.overdue", { span: duration(-left) }) : duration(left);
  }

  function tickCountdowns() {
    const now = new Date();
    document.querySelectorAll("#sup-callbacks td.countdown").forEach((td) => {
      td.textContent = countdown(td.dataset.deadline, now);
    });
  }

  // --- language -----------------------------------------------------------------------------

  /** The agent picked a language: kept with the agent (every console of theirs), then shown. */
  async function chooseLanguage() {
    const wanted = $("language-switch").value;
    try {
      setMe(await api("POST", "/agent/language", { language: wanted }));
    } catch (err) {
      if (err.status !== 401) notice(t("console.language_failed", { reason: err.message }), "error");
      $("language-switch").value = window.I18N.lang;
    }
  }

  /** The language changed (i18n.js has translated the page's static text): dates in the
   *  new locale, and everything drawn from data drawn again. */
  function redraw() {
    const zone = ui.zone;
    ui.zone = null;
    fmt = formats(undefined);
    setZone(zone);
    if (!zone) $("wu-due-label").textContent = t("console.wrapup.due_centre");
    if (ui.me) setMe(ui.me);
    if (ui.context) {
      const status = ui.callStatus;
      screenpop(ui.context);
      if (status) setCallStatus(status);
      document.title = callTitle(ui.context);
    } else {
      document.title = t("console.title");
    }
    if (ui.board) renderSupervisor(ui.board);
    $("sup-alerts").replaceChildren();  // their words were the old language's
  }

  // --- start -------------------------------------------------------------------------------

  async function boot() {
    $("login-form").addEventListener("submit", login);
    $("sign-out").addEventListener("click", logout);
    $("toggle-available").addEventListener("click", toggleState);
    // transfers.js: a transfer to this agent ended before the call was theirs: the pop goes;
    // their leg of it answered: the call is on.
    document.addEventListener("console:drop", (e) => {
      if (!ui.context || ui.context.call_sid !== e.detail?.call_sid) return;
      clearCall();
      notice(e.detail.message, "info");
    });
    document.addEventListener("console:answered", (e) => {
      if (ui.context?.call_sid === e.detail?.call_sid && ui.callStatus === "ringing") setCallStatus("answered");
    });
    $("language-switch").addEventListener("change", chooseLanguage);
    window.I18N.onChange(redraw);
    $("wrapup-form").addEventListener("submit", submitWrapup);
    $("wrapup-form").addEventListener("input", saveDraft);
    $("wrapup-form").addEventListener("change", saveDraft);
    ui.tick = setInterval(() => { tickState(); tickCountdowns(); }, 1000);
    try {
      const response = await fetch("/agent/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) { start(await response.json()); return; }
    } catch { /* offline: show the form */ }
    showLogin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
}());
