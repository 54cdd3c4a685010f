// expbot playground: renders the Block Kit the app sends and plays the acting person's clicks back as Slack would.
"use strict";

const S = { state: null, version: -1, me: localStorage.getItem("pg.me") || "", view: "", thread: null, modalKey: "" };
const $ = (id) => document.getElementById(id);
const EMOJI = {
  white_check_mark: "✅", x: "❌", no_entry_sign: "🚫", leftwards_arrow_with_hook: "↩️", hourglass: "⌛",
  warning: "⚠️", gear: "⚙️", memo: "📝", test_tube: "🧪", tada: "🎉", lock: "🔒", eyes: "👀", rocket: "🚀",
  heavy_check_mark: "✔️", hourglass_flowing_sand: "⏳", information_source: "ℹ️", bulb: "💡",
};

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}

async function api(path, body) {
  const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = await resp.json().catch(() => ({ ok: false, error: `HTTP ${resp.status}` }));
  if (!out.ok && out.error) toast(`Slack says: ${out.error}`);
  setTimeout(poll, 50);
  return out;
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

// -- mrkdwn -----------------------------------------------------------------------------------------------
const decode = (s) => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
const emoji = (s) => s.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);

function tag(inner) {
  const [target, label] = inner.split("|", 2);
  const names = S.state.names, groups = S.state.groups;
  if (target.startsWith("@")) return h("span", { class: "mention" }, "@" + (label || names[target.slice(1)] || target.slice(1)));
  if (target.startsWith("#")) return h("span", { class: "mention" }, "#" + (label || S.state.channel_names[target.slice(1)] || target.slice(1)));
  if (target.startsWith("!subteam^")) {
    const id = target.slice(9);
    return h("span", { class: "mention" }, label || "@" + (groups[id] || id));
  }
  if (target.startsWith("!date^")) {
    const [, stamp, format] = target.split("^");
    const when = new Date(Number(stamp) * 1000);
    if (isNaN(when)) return decode(label || "");
    return format.replace(/\{date_short_pretty\}|\{date_short\}|\{date\}|\{date_pretty\}/g, when.toLocaleDateString())
      .replace(/\{time\}/g, when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }
  if (target.startsWith("!")) return h("span", { class: "mention" }, "@" + target.slice(1));
  return h("a", { href: decode(target), target: "_blank", rel: "noopener" }, decode(label || target));
}

const INLINE = /`([^`\n]+)`|<([^<>\n]+)>|(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])|(?<![\w~])~(?!\s)([^~\n]+?)~(?![\w~])/g;

function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(emoji(decode(text.slice(last, m.index))));
    if (m[1] !== undefined) out.push(h("code", {}, decode(m[1])));
    else if (m[2] !== undefined) out.push(tag(m[2]));
    else if (m[3] !== undefined) out.push(h("b", {}, inline(m[3])));
    else if (m[4] !== undefined) out.push(h("i", {}, inline(m[4])));
    else out.push(h("s", {}, inline(m[5])));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(emoji(decode(text.slice(last))));
  return out;
}

function mrkdwn(text) {
  const root = h("div", { class: "mrkdwn" });
  const parts = String(text || "").split(/```([\s\S]*?)```/);
  parts.forEach((part, i) => {
    if (i % 2) root.append(h("pre", {}, decode(part.replace(/^\n/, ""))));
    else for (const [j, line] of part.split("\n").entries()) {
      if (j) root.append("\n");
      if (line.startsWith("&gt; ")) root.append(h("blockquote", {}, inline(line.slice(5))));
      else root.append(...inline(line));
    }
  });
  return root;
}

const textObj = (t) => (!t ? "" : t.type === "mrkdwn" ? mrkdwn(t.text) : h("span", {}, t.emoji === false ? t.text : emoji(t.text)));
const plain = (t) => (t ? (typeof t === "string" ? t : t.text) : "");

// -- Block Kit --------------------------------------------------------------------------------------------
// `ctx`: where the element lives ({kind: "message", channel, ts} or {kind: "view", view}), for the action payload.
function confirmThen(confirm, run) {
  if (!confirm) return run();
  const box = h("div", { class: "modal confirm", role: "dialog", "aria-label": plain(confirm.title) },
    h("header", {}, plain(confirm.title)),
    h("div", { class: "blocks" }, textObj(confirm.text)),
    h("footer", {},
      h("button", { onclick: () => closeConfirm() }, plain(confirm.deny) || "Cancel"),
      h("button", { class: confirm.style === "danger" ? "danger" : "primary", "data-confirm": "yes",
        onclick: () => { closeConfirm(); run(); } }, plain(confirm.confirm) || "Confirm")));
  const layer = h("div", { id: "confirm-layer", class: "layer" }, box);
  Object.assign(layer.style, { position: "fixed", inset: 0, background: "rgba(0,0,0,.45)", display: "flex",
    alignItems: "center", justifyContent: "center", zIndex: 15 });
  document.body.append(layer);
}
const closeConfirm = () => $("confirm-layer")?.remove();

function act(ctx, block, element, extra) {
  const action = { action_id: element.action_id, block_id: block.block_id, type: element.type, ...extra };
  if (ctx.kind === "view") {
    return api("/ui/action", { user: S.me, container: { type: "view", view_id: ctx.view.id }, state: viewState(), action });
  }
  return api("/ui/action", { user: S.me, container: { type: "message", channel: ctx.channel, ts: ctx.ts }, action });
}

function button(ctx, block, el) {
  return h("button", { class: el.style || "", "data-action-id": el.action_id, onclick: (ev) => {
    if (el.url) window.open(el.url, "_blank", "noopener");
    confirmThen(el.confirm, () => { ev.target.disabled = true; act(ctx, block, el, { value: el.value, text: el.text }); });
  } }, emoji(plain(el.text)));
}

function staticSelect(el, onPick) {
  const sel = h("select", { "data-action-id": el.action_id },
    h("option", { value: "" }, plain(el.placeholder) || "Select an option"),
    ...(el.options || (el.option_groups || []).flatMap((g) => g.options)).map((o) =>
      h("option", { value: o.value, selected: el.initial_option && el.initial_option.value === o.value }, plain(o.text))));
  sel.pick = () => (el.options || (el.option_groups || []).flatMap((g) => g.options)).find((o) => o.value === sel.value) || null;
  if (onPick) sel.addEventListener("change", () => onPick(sel.pick()));
  return sel;
}

function externalSelect(ctx, block, el, onPick) {
  const wrap = h("div", { class: "external overflow", "data-action-id": el.action_id });
  wrap.picked = el.initial_option || null;
  const label = () => (wrap.picked ? plain(wrap.picked.text) : plain(el.placeholder) || "Type to search…");
  const pickBtn = h("button", { type: "button", class: "pick", onclick: () => open() }, label());
  wrap.append(pickBtn);
  async function open() {
    wrap.querySelector(".menu")?.remove();
    const search = h("input", { type: "text", placeholder: "Search" });
    const list = h("div", {});
    const menu = h("div", { class: "menu" }, search, list);
    const load = async () => {
      const out = await api("/ui/suggest", { user: S.me, view_id: ctx.view && ctx.view.id, block_id: block.block_id,
        action_id: el.action_id, value: search.value, state: viewState() });
      list.replaceChildren(...(out.options || []).map((o) => h("div", { class: "option", role: "option", onclick: () => {
        wrap.picked = o; pickBtn.textContent = plain(o.text); menu.remove(); if (onPick) onPick(o);
      } }, plain(o.text))));
      if (!(out.options || []).length) list.append(h("div", { class: "option" }, "No matches"));
    };
    search.addEventListener("input", () => { clearTimeout(load.t); load.t = setTimeout(load, 250); });
    wrap.append(menu);
    search.focus();
    load();
  }
  return wrap;
}

function overflow(ctx, block, el) {
  const wrap = h("div", { class: "overflow" });
  const toggle = h("button", { "data-action-id": el.action_id, "aria-label": "More actions", onclick: () => {
    const open = wrap.querySelector(".menu");
    if (open) return open.remove();
    wrap.append(h("div", { class: "menu" }, ...el.options.map((o) => h("button", { onclick: () => {
      wrap.querySelector(".menu")?.remove();
      confirmThen(el.confirm, () => act(ctx, block, el, { selected_option: o }));
    } }, plain(o.text)))));
  } }, "⋯");
  wrap.append(toggle);
  return wrap;
}

function element(ctx, block, el) {
  switch (el.type) {
    case "button": return button(ctx, block, el);
    case "static_select": return staticSelect(el, (o) => confirmThen(el.confirm, () => act(ctx, block, el, { selected_option: o })));
    case "external_select": return externalSelect(ctx, block, el, (o) => act(ctx, block, el, { selected_option: o }));
    case "overflow": return overflow(ctx, block, el);
    case "datepicker": return h("input", { type: "date", value: el.initial_date || "",
      onchange: (ev) => act(ctx, block, el, { selected_date: ev.target.value }) });
    case "image": return h("img", { src: el.image_url, alt: el.alt_text || "", width: 48 });
    default: return h("span", { class: "unknown" }, `Unsupported element: ${el.type}`);
  }
}

function block(ctx, b) {
  const wrap = (cls, ...kids) => h("div", { class: `block block-${cls}`, "data-block-type": b.type, "data-block-id": b.block_id }, ...kids);
  switch (b.type) {
    case "header": return wrap("header", emoji(plain(b.text)));
    case "divider": return h("hr", { class: "block block-divider", "data-block-type": "divider" });
    case "section": return wrap("section", h("div", { class: "content" }, textObj(b.text),
      b.fields ? h("div", { class: "fields" }, ...b.fields.map(textObj)) : null),
      b.accessory ? element(ctx, b, b.accessory) : null);
    case "context": return wrap("context", ...(b.elements || []).map((e) =>
      e.type === "image" ? h("img", { src: e.image_url, alt: e.alt_text || "" }) : textObj(e)));
    case "actions": return wrap("actions", ...(b.elements || []).map((e) => element(ctx, b, e)));
    case "image": return wrap("image", b.title ? h("div", {}, plain(b.title)) : null, h("img", { src: b.image_url, alt: b.alt_text || "" }));
    case "input": return input(ctx, b);
    default: return wrap("unknown", h("div", { class: "unknown" }, `Unsupported block: ${b.type}`));
  }
}

const blocks = (ctx, list) => (list || []).map((b) => { try { return block(ctx, b); } catch (err) {
  return h("div", { class: "unknown" }, `Could not show a ${b && b.type} block: ${err.message}`); } });

// -- modals: input blocks and their state, as Slack keeps it in view.state.values ---------------------------
const readers = new Map(); // block_id -> () => {action_id: entry}

function input(ctx, b) {
  const el = b.element || {};
  const errors = (ctx.view && ctx.view._errors) || {};
  const dispatch = (extra) => b.dispatch_action && act(ctx, b, el, extra);
  let control, read;
  switch (el.type) {
    case "plain_text_input":
      control = el.multiline ? h("textarea", { rows: 3, maxlength: el.max_length }) : h("input", { type: "text", maxlength: el.max_length });
      control.value = el.initial_value || "";
      if (el.placeholder) control.placeholder = plain(el.placeholder);
      read = () => ({ type: el.type, value: control.value === "" ? null : control.value });
      break;
    case "number_input":
      control = h("input", { type: "number", step: el.is_decimal_allowed ? "any" : "1", min: el.min_value, max: el.max_value });
      control.value = el.initial_value || "";
      read = () => ({ type: el.type, value: control.value === "" ? null : control.value });
      break;
    case "datepicker":
      control = h("input", { type: "date", onchange: () => dispatch({ selected_date: control.value }) });
      control.value = el.initial_date || "";
      read = () => ({ type: el.type, selected_date: control.value || null });
      break;
    case "static_select":
      control = staticSelect(el, (o) => dispatch({ selected_option: o }));
      read = () => ({ type: el.type, selected_option: control.pick() });
      break;
    case "external_select":
      control = externalSelect(ctx, b, el, (o) => dispatch({ selected_option: o }));
      read = () => ({ type: el.type, selected_option: control.picked });
      break;
    case "checkboxes":
    case "radio_buttons": {
      const multi = el.type === "checkboxes";
      const initial = multi ? (el.initial_options || []).map((o) => o.value) : [el.initial_option && el.initial_option.value];
      const boxes = (el.options || []).map((o) => h("input", { type: multi ? "checkbox" : "radio", name: b.block_id,
        value: o.value, checked: initial.includes(o.value), onchange: () => dispatch(multi ? { selected_options: picked() } : { selected_option: picked()[0] || null }) }));
      const picked = () => (el.options || []).filter((o, i) => boxes[i].checked);
      control = h("div", {}, ...(el.options || []).map((o, i) => h("label", { class: "choice" }, boxes[i], " ", textObj(o.text))));
      read = () => (multi ? { type: el.type, selected_options: picked() } : { type: el.type, selected_option: picked()[0] || null });
      break;
    }
    default:
      control = h("div", { class: "unknown" }, `Unsupported input: ${el.type}`);
      read = null;
  }
  if (read) readers.set(b.block_id, () => ({ [el.action_id]: read() }));
  const error = errors[b.block_id];
  return h("div", { class: "input" + (error ? " has-error" : ""), "data-block-type": "input", "data-block-id": b.block_id },
    h("label", {}, plain(b.label), b.optional ? h("span", { class: "optional" }, " (optional)") : null),
    control,
    b.hint ? h("div", { class: "hint" }, plain(b.hint)) : null,
    error ? h("div", { class: "error", role: "alert" }, error) : null);
}

function viewState() {
  const values = {};
  for (const [blockId, read] of readers) values[blockId] = read();
  return values;
}

function renderModal(view) {
  const key = view ? `${view.id}|${view.hash}|${JSON.stringify(view._errors || {})}|${S.me}` : "";
  if (key === S.modalKey) return;
  S.modalKey = key;
  const overlay = $("overlay");
  readers.clear();
  if (!view) { overlay.hidden = true; overlay.replaceChildren(); return; }
  const ctx = { kind: "view", view };
  const submit = h("button", { class: "primary", "data-submit": "yes", onclick: async (ev) => {
    ev.target.disabled = true;
    await api("/ui/submit", { user: S.me, view_id: view.id, state: viewState() });
    ev.target.disabled = false;
  } }, plain(view.submit) || "Submit");
  overlay.replaceChildren(h("div", { class: "modal", role: "dialog", "aria-label": plain(view.title) },
    h("header", {}, h("span", {}, plain(view.title)), view.depth > 1 ? h("small", {}, `${view.depth} deep`) : ""),
    h("div", { class: "blocks" }, ...blocks(ctx, view.blocks)),
    h("footer", {}, h("button", { onclick: () => api("/ui/close", { user: S.me, view_id: view.id, state: viewState() }) },
      plain(view.close) || "Cancel"), view.submit ? submit : null)));
  overlay.hidden = false;
}

// -- messages, threads, DMs, App Home ---------------------------------------------------------------------
const person = (id) => S.state.names[id] || id;

function message(m, inThread) {
  const ephemeral = m._ephemeral;
  const bot = m.user === S.state.bot || m.bot_id;
  const ctx = { kind: "message", channel: m.channel, ts: m.ts };
  const replies = inThread ? [] : S.state.messages.filter((r) => r.thread_ts === m.ts && r.ts !== m.ts);
  const content = m.blocks && m.blocks.length ? blocks(ctx, m.blocks) : [mrkdwn(m.text)];
  return h("div", { class: "msg" + (ephemeral ? " ephemeral" : ""), "data-ts": m.ts, "data-channel": m.channel },
    h("div", { class: "avatar" }, bot ? "🧪" : person(m.user)[0].toUpperCase()),
    h("div", { class: "body" },
      ephemeral ? h("div", { class: "only" }, "👁 Only visible to you") : null,
      h("span", { class: "who" }, ephemeral && !m.blocks ? "expbot" : bot ? "expbot" : person(m.user)),
      bot ? h("span", { class: "app" }, "APP") : null,
      m.edited ? h("span", { class: "edited" }, "(edited)") : null,
      ...content,
      replies.length ? h("button", { class: "replies", "data-thread": m.ts, onclick: () => openThread(m.channel, m.ts) },
        `${replies.length} ${replies.length === 1 ? "reply" : "replies"}`) : null));
}

function keepScroll(el, render) {
  const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  const top = el.scrollTop;
  render();
  el.scrollTop = atBottom ? el.scrollHeight : top;
}

function mine(channel, threadTs) {
  return S.state.ephemerals.filter((e) => e.channel === channel && (e.thread_ts || null) === threadTs)
    .map((e) => ({ ...e, _ephemeral: true, user: S.state.bot }));
}
const byTs = (a, b) => parseFloat(a.ts) - parseFloat(b.ts);

function renderMain() {
  const st = S.state;
  const channel = st.channels.find((c) => c.id === S.view);
  $("title").textContent = S.view === "home" ? "expbot · Home" : channel.kind === "dm" ? "expbot (direct message)" : `# ${channel.name}`;
  $("composer").hidden = S.view === "home";
  keepScroll($("messages"), () => {
    if (S.view === "home") {
      const home = st.home;
      $("messages").replaceChildren(h("div", { class: "home" }, home ? blocks({ kind: "home" }, home.blocks) : "Opening App Home…"));
      return;
    }
    const top = st.messages.filter((m) => m.channel === S.view && (!m.thread_ts || m.thread_ts === m.ts));
    const shown = [...top, ...mine(S.view, null)].sort(byTs);
    $("messages").replaceChildren(...(shown.length ? shown.map((m) => message(m, false)) : [h("p", { class: "hint", style: "padding:0 16px" }, "No messages yet.")]));
  });
  if (S.thread) {
    const parent = st.messages.find((m) => m.channel === S.thread.channel && m.ts === S.thread.ts);
    const replies = st.messages.filter((m) => m.channel === S.thread.channel && m.thread_ts === S.thread.ts && m.ts !== S.thread.ts);
    const shown = [...replies, ...mine(S.thread.channel, S.thread.ts)].sort(byTs);
    $("thread").hidden = !parent;
    if (parent) keepScroll($("thread-messages"), () => $("thread-messages").replaceChildren(message(parent, true), h("hr", { class: "block-divider" }), ...shown.map((m) => message(m, true))));
  }
}

function renderSidebar() {
  const st = S.state;
  const who = $("who");
  if (who.options.length !== st.people.length) {
    who.replaceChildren(...st.people.map((p) => h("option", { value: p.id }, `${p.name}${p.role ? " — " + p.role : ""}`)));
  }
  who.value = S.me;
  const me = st.people.find((p) => p.id === S.me);
  $("role").textContent = me && me.role ? me.role : "";
  $("banner").textContent = `You are acting as ${me ? me.name : S.me}. Switch people with "Acting as".`;
  const link = (c, label) => h("li", {}, h("a", { href: "#", class: S.view === c.id ? "active" : "", "data-nav": c.id,
    onclick: (ev) => { ev.preventDefault(); go(c.id); } }, label));
  $("channels").replaceChildren(...st.channels.filter((c) => c.kind === "channel").map((c) => link(c, `# ${c.name}`)));
  $("dms").replaceChildren(...st.channels.filter((c) => c.kind === "dm").map((c) => link(c, `expbot`)));
  $("home-link").className = S.view === "home" ? "active" : "";
}

function render() {
  if (!S.state) return;
  if (!S.view) S.view = S.state.command_channel;
  renderSidebar();
  renderMain();
  renderModal(S.state.modal);
}

function go(view) {
  S.view = view;
  if (view === "home") api("/ui/home", { user: S.me });
  render();
}

function openThread(channel, ts) {
  S.thread = { channel, ts };
  render();
}

async function poll() {
  if (poll.busy) return;
  poll.busy = true;
  try {
    const resp = await fetch(`/ui/state?user=${encodeURIComponent(S.me)}&since=${S.version}`);
    const st = await resp.json();
    if (!st.unchanged) {
      if (!st.people.some((p) => p.id === S.me)) {
        S.me = st.people[0].id;
        S.version = -1;
        poll.busy = false;
        return poll();
      }
      S.state = st;
      S.version = st.version;
      render();
    }
  } catch (err) { /* the playground stopped: try again on the next tick */ }
  poll.busy = false;
}

$("who").addEventListener("change", (ev) => {
  S.me = ev.target.value;
  localStorage.setItem("pg.me", S.me);
  S.version = -1;
  S.modalKey = "";
  if (S.view === "home") api("/ui/home", { user: S.me });
  poll();
});
$("home-link").addEventListener("click", (ev) => { ev.preventDefault(); go("home"); });
$("close-thread").addEventListener("click", () => { S.thread = null; $("thread").hidden = true; });
$("composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("compose").value.trim();
  if (!text) return;
  $("compose").value = "";
  await api("/ui/command", { user: S.me, channel: S.view, text });
});
poll();
setInterval(poll, 500);
