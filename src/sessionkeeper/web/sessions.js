/* The sessions dashboard: totals, per-agent counts, a searchable paginated table (filtered by
 * agent, user, status and metadata), a transcript view (with its own link, /sessions?id=…,
 * and an export), the maintenance buttons (ghost purge; prune with a dry run first) and the
 * retention policies (list, set, delete, preview a run, run), shown only to a key that may use
 * them (GET /whoami). A transcript shows the session's lineage (the session it was forked
 * from, its branches) and its usage and cost (GET …/usage). */
"use strict";

(() => {
  const { api, el, clear, when, fullTime, num, plural } = SK;
  const $ = (id) => document.getElementById(id);
  const PAGE = 20;
  const GHOST_MINUTES = 15;
  const MAX_DAYS = 36600;  // a century, as the server allows
  const MAX_MINUTES = 100 * 366 * 24 * 60;  // the same century in minutes
  const state = { offset: 0, total: 0, selected: null, pruneDays: null, policies: [] };

  function notice(node, text, kind) {
    node.hidden = !text;
    node.textContent = text || "";
    node.className = "notice" + (kind ? " " + kind : "");
  }
  const say = (text, kind) => notice($("notice"), text, kind);
  const maintSay = (text, kind) => notice($("maint-result"), text, kind);
  const policySay = (text, kind) => notice($("policy-result"), text, kind);

  /* ── stats ───────────────────────────────────────────────────────────── */

  async function loadStats() {
    let st;
    try { st = await api("/sessions/stats"); } catch (err) {
      say("Could not load stats: " + err.message, "error");
      return;
    }
    $("st-sessions").textContent = num(st.total_sessions);
    $("st-status").textContent = num(st.active_sessions) + " active · " +
      num(st.ended_sessions) + " ended";
    $("st-messages").textContent = num(st.total_messages);
    $("st-tokens").textContent = plural(st.total_tokens, "token");
    $("st-agents").textContent = num(Object.keys(st.by_agent).length);
    $("st-types").textContent = Object.entries(st.by_type)
      .map(([t, n]) => num(n) + " " + t).join(" · ");
    $("st-ghosts").textContent = num(st.ghost_sessions);
    $("st-ghost-rule").textContent = "no messages, over " + st.ghost_threshold_minutes + " min old";
    $("st-stale").textContent = num(st.stale_sessions);
    $("st-stale-rule").textContent = "idle over " + st.stale_threshold_days + " days";
    $("card-ghosts").classList.toggle("warn", st.ghost_sessions > 0);
    $("card-stale").classList.toggle("warn", st.stale_sessions > 0);
    $("purge-ghosts").textContent = "Purge ghosts (" + num(st.ghost_sessions) + ")";

    const bars = clear($("by-agent"));
    const entries = Object.entries(st.by_agent).sort((a, b) => b[1] - a[1]);
    const top = entries.length ? entries[0][1] : 1;
    if (!entries.length) bars.append(el("li", { class: "muted small", text: "No sessions yet." }));
    for (const [agent, n] of entries) {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.max(2, Math.round((100 * n) / top)) + "%";
      bars.append(el("li", {}, el("span", { class: "bar-label", text: agent }),
        el("span", { class: "bar-track" }, bar), el("span", { class: "bar-num", text: num(n) })));
    }

    const select = $("filter-agent");
    const keep = select.value;
    clear(select).append(el("option", { value: "", text: "All agents" }));
    for (const [agent] of entries) select.append(el("option", { value: agent, text: agent }));
    select.value = entries.some(([a]) => a === keep) ? keep : "";
  }

  /* ── table ───────────────────────────────────────────────────────────── */

  /* The metadata box: "team=red, priority=1" (each value JSON when it parses as JSON, else
   * text, as the CLI's --meta reads it) or a JSON object; null when empty. The server checks
   * the rest (422 naming metadata). */
  function metadataFilter(text) {
    text = text.trim();
    if (!text) return null;
    if (text.startsWith("{")) return JSON.parse(text);
    const found = {};
    for (const part of text.split(",")) {
      const pair = part.trim();
      if (!pair) continue;
      const at = pair.indexOf("=");
      const key = at < 0 ? "" : pair.slice(0, at).trim();
      if (!key) throw new Error("use key=value, e.g. team=red");
      if (Object.prototype.hasOwnProperty.call(found, key)) throw new Error(key + " is given twice");
      const raw = pair.slice(at + 1).trim();
      try { found[key] = JSON.parse(raw); } catch (_) { found[key] = raw; }
    }
    return found;
  }

  async function loadTable() {
    const q = new URLSearchParams({ limit: PAGE, offset: state.offset, sort: "updated_at",
      order: "desc" });
    const search = $("search").value.trim();
    if (search) q.set("search", search);
    if ($("filter-agent").value) q.set("agent_id", $("filter-agent").value);
    const user = $("filter-user").value.trim();
    if (user) q.set("user_id", user);
    if ($("filter-status").value) q.set("status", $("filter-status").value);
    const metaBox = $("filter-meta");
    let wanted;
    try { wanted = metadataFilter(metaBox.value); } catch (err) {
      metaBox.setAttribute("aria-invalid", "true");
      say("Metadata filter: " + err.message, "error");
      return;
    }
    metaBox.setAttribute("aria-invalid", "false");
    if (wanted) q.set("metadata", JSON.stringify(wanted));
    let page;
    try { page = await api("/sessions?" + q); } catch (err) {
      const field = err.body && err.body.field ? err.body.field.split(".")[0] : null;
      if (field === "metadata") metaBox.setAttribute("aria-invalid", "true");
      say("Could not load sessions: " + err.message, "error");
      return;
    }
    if (!page.sessions.length && state.offset > 0) {  // the last page emptied (deletes)
      state.offset = Math.max(0, state.offset - PAGE);
      return loadTable();
    }
    state.total = page.total;
    const rows = clear($("rows"));
    if (!page.sessions.length) {
      rows.append(el("tr", {}, el("td", { colspan: 8, class: "muted empty-row",
        text: search ? "No session matches “" + search + "”." : "No sessions." })));
    }
    for (const s of page.sessions) {
      const last = s.last_message_at || s.updated_at;
      const row = el("tr", {
        class: "row" + (s.session_id === state.selected ? " selected" : ""),
        tabindex: 0, "data-session-id": s.session_id,
        onclick: () => showDetail(s.session_id),
        onkeydown: (e) => { if (e.key === "Enter") showDetail(s.session_id); },
      },
      // data-label names a cell where narrow screens stack each row (app.css).
      el("td", { class: "cell-session" },
        el("div", { class: "cell-title", title: s.title || null, text: s.title || "Untitled" }),
        el("div", { class: "cell-id", text: s.session_id })),
      el("td", { class: "cell-label", "data-label": "Agent", text: s.agent_id }),
      el("td", { class: "cell-label cell-user", "data-label": "User",
        text: s.user_id === null ? "—" : s.user_id }),
      el("td", { class: "cell-label", "data-label": "Type", text: s.session_type }),
      el("td", { class: "cell-status" },
        el("span", { class: "badge status-" + s.status, text: s.status }),
        s.message_count === 0 ? el("span", { class: "badge warn", text: "empty" }) : null,
        s.parent_session_id ? el("span", { class: "badge fork", text: "fork",
          title: "Forked from " + s.parent_session_id + " at message #" + s.fork_seq }) : null),
      el("td", { class: "num", "data-label": "Messages", text: num(s.message_count) }),
      el("td", { class: "num", "data-label": "Tokens", text: num(s.token_count) }),
      el("td", { class: "cell-when", title: fullTime(last), text: when(last) }));
      rows.append(row);
    }
    const first = page.sessions.length ? state.offset + 1 : 0;
    const lastN = state.offset + page.sessions.length;
    $("page-info").textContent = page.total === null
      ? first + "–" + lastN
      : first + "–" + lastN + " of " + num(page.total);
    $("prev").disabled = state.offset === 0;
    $("next").disabled = !page.has_more;
  }

  /* ── transcript ──────────────────────────────────────────────────────── */

  /* The address of the transcript shown (or of the dashboard alone), kept in the URL so it
   * can be bookmarked, shared and reloaded. */
  function setUrl(sessionId) {
    const url = sessionId ? "/sessions?id=" + encodeURIComponent(sessionId) : "/sessions";
    if (window.location.pathname + window.location.search !== url) {
      window.history.replaceState(null, "", url);
    }
  }

  function closeDetail() {
    $("detail").hidden = true;
    state.selected = null;
    setUrl(null);
  }

  async function showDetail(sessionId) {
    state.selected = sessionId;
    for (const tr of document.querySelectorAll("#rows tr.row")) {
      tr.classList.toggle("selected", tr.dataset.sessionId === sessionId);
    }
    const id = encodeURIComponent(sessionId);
    let s, list;
    try {
      [s, list] = await Promise.all([api("/sessions/" + id),
        api("/sessions/" + id + "/messages?last=500")]);
    } catch (err) {
      say(err.status === 404 ? "No session " + sessionId + "."
        : "Could not open " + sessionId + ": " + err.message, "error");
      if (state.selected === sessionId) closeDetail();
      return;
    }
    setUrl(sessionId);
    $("detail").hidden = false;
    $("detail-title").textContent = s.title || "Untitled";
    $("detail-title").title = s.title || "";
    $("detail-meta").textContent = [s.session_id, s.agent_id,
      s.user_id === null ? null : "user " + s.user_id, s.session_type, s.status,
      plural(s.message_count, "message"), plural(s.token_count, "token"),
      "created " + fullTime(s.created_at)].filter(Boolean).join(" · ");
    $("detail-open").href = "/chat?session=" + id;
    $("detail-link").href = "/sessions?id=" + id;
    $("detail-end").disabled = s.status === "ended";
    const box = clear($("detail-messages"));
    if (!list.messages.length) box.append(el("p", { class: "muted", text: "No messages." }));
    if (s.message_count > list.messages.length) {
      box.append(el("p", { class: "muted small",
        text: "Showing the newest " + list.messages.length + " messages." }));
    }
    for (const m of list.messages) {
      const md = m.metadata || {};
      const tags = [md.echo ? "echo model" : m.model, md.partial ? "partial: " + md.error : null]
        .filter(Boolean).join(" · ");
      const bubble = el("div", { class: "bubble" });
      if (m.role === "assistant") SK.renderMarkdown(bubble, m.content);  // as the chat shows it
      else bubble.textContent = m.content;
      box.append(el("article", { class: "msg " + m.role },
        el("div", { class: "msg-role" }, m.role + " #" + m.seq,
          el("span", { class: "msg-meta-inline", text: (tags ? tags + " · " : "") +
            fullTime(m.created_at) })),
        bubble));
    }
    $("detail").scrollIntoView({ behavior: "smooth", block: "nearest" });
    await Promise.all([showLineage(s), showUsage(s)]);
  }

  /* A link that shows another session's transcript here. */
  function sessionLink(id) {
    return el("a", { href: "/sessions?id=" + encodeURIComponent(id), text: id,
      "data-session-id": id, onclick: (e) => { e.preventDefault(); showDetail(id); } });
  }

  /* Where the session was forked from (fork_seq: the messages it took) and the sessions
   * forked from it (forks and rewind branches, oldest first). */
  async function showLineage(s) {
    const box = clear($("detail-lineage"));
    box.hidden = true;
    let branches;
    try {
      branches = (await api("/sessions/" + encodeURIComponent(s.session_id) + "/branches"))
        .branches;
    } catch (err) {
      if (state.selected !== s.session_id) return;
      box.hidden = false;
      box.append(el("p", { class: "msg-error", text: "Could not load the branches: " +
        err.message }));
      return;
    }
    if (state.selected !== s.session_id) return;  // another transcript was opened meanwhile
    if (s.parent_session_id) {
      box.append(el("div", { class: "lineage-parent" }, "Forked from ",
        sessionLink(s.parent_session_id), " at message #" + s.fork_seq));
    }
    if (branches.length) {
      const list = el("ul", { class: "lineage-branches" });
      for (const b of branches) {
        list.append(el("li", { "data-session-id": b.session_id }, sessionLink(b.session_id),
          " · from message #" + b.fork_seq + " · " + plural(b.message_count, "message") +
          (b.title ? " · " + b.title : "")));
      }
      box.append(el("div", {}, el("span", { class: "lineage-count",
        text: (branches.length === 1 ? "1 branch" : num(branches.length) + " branches") +
          ":" }), list));
    }
    box.hidden = !box.children.length;
  }

  /* Usage and cost of the session's messages, by model (GET …/usage). Cost is shown as the
   * server writes it (exact decimal text), or "unknown", never 0. */
  async function showUsage(s) {
    const box = clear($("detail-usage"));
    box.hidden = true;
    box.dataset.state = "loading";
    let u;
    try {
      u = await api("/sessions/" + encodeURIComponent(s.session_id) + "/usage");
    } catch (err) {
      if (state.selected !== s.session_id) return;
      if (err.status === 404) {  // the session was deleted just now
        box.dataset.state = "absent";
        return;
      }
      box.dataset.state = "error";
      box.hidden = false;
      box.append(el("p", { class: "msg-error", text: "Could not load usage: " + err.message }));
      return;
    }
    if (state.selected !== s.session_id) return;
    box.dataset.state = "shown";
    box.hidden = false;
    const money = (cost) => cost === null || cost === undefined || cost === "unknown"
      ? "unknown" : "$" + cost;
    if (!u.messages) {
      box.append(el("p", { class: "muted", text: "Usage: none recorded." }));
      return;
    }
    const total = u.cost_status === "partial"
      ? money(u.cost_usd) + " + unknown (" + u.unknown_models.map((m) => m || "no model")
        .join(", ") + ")"
      : money(u.cost_status === "unknown" ? null : u.cost_usd);
    box.append(el("p", { class: "usage-total" },
      el("strong", { text: "Usage: " }),
      plural(u.requests, "request") + " · " + plural(u.input_tokens, "input token") +
      (u.cached_tokens ? " (" + num(u.cached_tokens) + " cached)" : "") + " · " +
      plural(u.output_tokens, "output token") +
      (u.reasoning_tokens ? " (" + num(u.reasoning_tokens) + " reasoning)" : "") +
      " · cost ", el("span", { class: "usage-cost", text: total })));
    const rows = el("tbody");
    for (const m of u.by_model || []) {
      rows.append(el("tr", {},
        el("td", { text: m.model || "(no model)" }),
        el("td", { class: "num", text: num(m.messages) }),
        el("td", { class: "num", text: num(m.requests) }),
        el("td", { class: "num", text: num(m.input_tokens) }),
        el("td", { class: "num", text: num(m.output_tokens) }),
        el("td", { class: "num", text: money(m.cost_usd) })));
    }
    box.append(el("div", { class: "table-wrap" }, el("table", { class: "usage-table" },
      el("thead", {}, el("tr", {}, ...["Model", "Messages", "Requests", "Input", "Output",
        "Cost (USD)"].map((h, i) => el("th", { class: i ? "num" : null, text: h })))),
      rows)));
    if (u.price_source) {
      box.append(el("p", { class: "muted small", text: "Prices: " + u.price_source +
        (u.priced_at ? ", as of " + fullTime(u.priced_at) : "") }));
    }
  }

  async function refreshAll() {
    await Promise.all([loadStats(), loadTable()]);
  }

  async function endSelected() {
    const id = state.selected;
    try {
      await api("/sessions/" + encodeURIComponent(id) + "/end", { method: "POST" });
      say("Session " + id + " ended.");
      await Promise.all([refreshAll(), showDetail(id)]);
    } catch (err) { say("End failed: " + err.message, "error"); }
  }

  async function deleteSelected() {
    const id = state.selected;
    if (!window.confirm("Delete session " + id + " and all its messages?")) return;
    try {
      await api("/sessions/" + encodeURIComponent(id), { method: "DELETE" });
      closeDetail();
      say("Session " + id + " deleted.");
      await refreshAll();
    } catch (err) { say("Delete failed: " + err.message, "error"); }
  }

  async function exportSelected() {
    const id = state.selected;
    try {
      await SK.download("/sessions/" + encodeURIComponent(id) + "/export", id + ".jsonl");
    } catch (err) { say("Export failed: " + err.message, "error"); }
  }

  /* ── maintenance ─────────────────────────────────────────────────────── */

  /* Purge and prune span every agent: only an admin key (or the open API) may run them, so
   * only then are they shown. */
  async function showMaintenance() {
    const me = await SK.whoami();
    const may = !!me && me.maintenance;
    $("maint-actions").hidden = !may;
    const section = document.querySelector(".maintenance");
    section.classList.toggle("no-maint", !may);
    section.dataset.maintenance = String(may);  // decided (tests wait for it)
  }

  /* Whole days from 1 to a century, as the server wants: "0.0001" or "1.5" are refused here
   * with the rule, not sent. */
  function pruneDays() {
    const input = $("prune-days");
    const text = input.value.trim();
    const days = Number(text);
    const ok = /^[0-9]+$/.test(text) && days >= 1 && days <= MAX_DAYS;
    input.setAttribute("aria-invalid", String(!ok));
    if (!ok) {
      maintSay("Days must be a whole number from 1 to " + num(MAX_DAYS) + ".", "error");
      return null;
    }
    return days;
  }

  async function purgeGhosts() {
    const button = $("purge-ghosts");
    button.disabled = true;
    try {
      const r = await api("/sessions/ghosts?older_than_minutes=" + GHOST_MINUTES,
        { method: "DELETE" });
      maintSay("Purged " + plural(r.deleted, "ghost session") + ".", "ok");
      await refreshAll();
    } catch (err) {
      maintSay("Purge failed: " + err.message, "error");
    } finally { button.disabled = false; }
  }

  async function pruneCheck() {
    $("prune-confirm").hidden = true;
    const days = pruneDays();
    if (days === null) return;
    try {
      const r = await api("/sessions/prune?dry_run=true&days=" + days, { method: "POST" });
      state.pruneDays = days;
      const confirm = $("prune-confirm");
      confirm.hidden = r.pruned_count === 0;
      confirm.textContent = "Confirm: delete " + plural(r.pruned_count, "session");
      maintSay(r.pruned_count
        ? plural(r.pruned_count, "session") + " (" + plural(r.message_count, "message") +
          ") idle for more than " + days + " days would be deleted."
        : "No session has been idle for more than " + days + " days.", r.pruned_count ? "warn" : "ok");
    } catch (err) { maintSay("Prune check failed: " + err.message, "error"); }
  }

  async function pruneConfirm() {
    const days = state.pruneDays;
    $("prune-confirm").hidden = true;
    try {
      const r = await api("/sessions/prune?days=" + days, { method: "POST" });
      maintSay("Pruned " + plural(r.pruned_count, "session") + " (" +
        plural(r.message_count, "message") + ").", "ok");
      await refreshAll();
    } catch (err) { maintSay("Prune failed: " + err.message, "error"); }
  }

  /* ── retention policies ──────────────────────────────────────────────── */

  /* A policy spans every session of its agents (the default, every agent's): only an admin
   * key (or the open API) may read or change them, so only then is the panel shown. */
  async function showPolicies() {
    const me = await SK.whoami();
    const may = !!me && me.admin;
    $("policies").hidden = !may;
    $("policies").dataset.policies = String(may);  // decided (tests wait for it)
    if (may) await loadPolicies();
  }

  const agentName = (agent) => agent === "*" ? "* (default)" : agent;

  /* A policy's rules in words, in the order the server applies them. */
  function ruleWords(p) {
    const words = [];
    if (p.end_idle_minutes !== null) {
      words.push("end idle after " + plural(p.end_idle_minutes, "minute"));
    }
    if (p.delete_ended_days !== null) {
      words.push("delete ended after " + plural(p.delete_ended_days, "day"));
    }
    if (p.delete_after_days !== null) {
      words.push("delete after " + plural(p.delete_after_days, "day"));
    }
    return words.length ? words.join(" · ") : "keep every session (no rule)";
  }

  const RULE_WORDS = {
    end_idle_after: ["end idle after", "end_idle_minutes", "minute"],
    delete_ended_after: ["delete ended after", "delete_ended_days", "day"],
    delete_after: ["delete after", "delete_after_days", "day"],
  };

  function editPolicy(p) {
    $("policy-agent").value = p.agent_id;
    $("policy-idle").value = p.end_idle_minutes === null ? "" : p.end_idle_minutes;
    $("policy-ended").value = p.delete_ended_days === null ? "" : p.delete_ended_days;
    $("policy-after").value = p.delete_after_days === null ? "" : p.delete_after_days;
    $("policy-agent").focus();
  }

  async function loadPolicies() {
    let list;
    try { list = await api("/policies"); } catch (err) {
      policySay("Could not load the retention policies: " + err.message, "error");
      return;
    }
    state.policies = list.policies;
    const box = clear($("policy-list"));
    if (!list.policies.length) {
      box.append(el("li", { class: "muted small",
        text: "No policy: every session is kept until deleted." }));
    }
    for (const p of list.policies) {
      box.append(el("li", { class: "policy", "data-agent-id": p.agent_id },
        el("span", { class: "policy-agent", text: agentName(p.agent_id) }),
        el("span", { class: "policy-rules-text", text: ruleWords(p) }),
        el("span", { class: "muted small policy-when", title: fullTime(p.updated_at),
          text: "updated " + when(p.updated_at) }),
        el("span", { class: "policy-actions" },
          el("button", { type: "button", class: "policy-edit", text: "Edit",
            "aria-label": "Edit the policy of " + agentName(p.agent_id),
            onclick: () => editPolicy(p) }),
          el("button", { type: "button", class: "danger policy-delete", text: "Delete",
            "aria-label": "Delete the policy of " + agentName(p.agent_id),
            onclick: () => deletePolicy(p.agent_id) }))));
    }
  }

  /* A rule's box: null (off) when empty, a whole number from 1 to max, or undefined (and the
   * rule said) when anything else is typed. */
  function ruleValue(id, what, max) {
    const input = $(id);
    const text = input.value.trim();
    if (!text) {
      input.setAttribute("aria-invalid", "false");
      return null;
    }
    const n = Number(text);
    const ok = /^[0-9]+$/.test(text) && n >= 1 && n <= max;
    input.setAttribute("aria-invalid", String(!ok));
    if (!ok) {
      policySay(what + " must be a whole number from 1 to " + num(max) + ", or empty (off).",
        "error");
      return undefined;
    }
    return n;
  }

  async function savePolicy(event) {
    event.preventDefault();
    const agentBox = $("policy-agent");
    const agent = agentBox.value.trim();
    agentBox.setAttribute("aria-invalid", String(!agent));
    if (!agent) {
      policySay("Name the agent (or * for the default policy).", "error");
      return;
    }
    const body = {
      end_idle_minutes: ruleValue("policy-idle", "End idle after (minutes)", MAX_MINUTES),
      delete_ended_days: ruleValue("policy-ended", "Delete ended after (days)", MAX_DAYS),
      delete_after_days: ruleValue("policy-after", "Delete after (days)", MAX_DAYS),
    };
    if (Object.values(body).includes(undefined)) return;
    const button = $("policy-save");
    button.disabled = true;
    try {
      const p = await api("/policies/" + encodeURIComponent(agent), { method: "PUT", json: body });
      policySay("Policy of " + agentName(p.agent_id) + " saved: " + ruleWords(p) + ".", "ok");
      await loadPolicies();
    } catch (err) {
      if (err.body && err.body.field === "agent_id") agentBox.setAttribute("aria-invalid", "true");
      policySay("Could not save the policy: " + err.message, "error");
    } finally { button.disabled = false; }
  }

  async function deletePolicy(agent) {
    const rest = agent === "*" ? "Agents without a policy of their own will keep every session."
      : "The default policy (if any) applies to " + agent + " again.";
    if (!window.confirm("Delete the retention policy of " + agentName(agent) + "? " + rest)) return;
    try {
      await api("/policies/" + encodeURIComponent(agent), { method: "DELETE" });
      policySay("Policy of " + agentName(agent) + " deleted.", "ok");
    } catch (err) {
      policySay("Could not delete the policy: " + err.message, "error");
    }
    await loadPolicies();
  }

  /* What a run did, or would do: each rule of each policy with its count and session ids. */
  function showRun(r) {
    const box = clear($("policy-rules"));
    box.hidden = !r.rules.length;
    const byAgent = new Map((state.policies || []).map((p) => [p.agent_id, p]));
    for (const rule of r.rules) {
      const [words, field, unit] = RULE_WORDS[rule.rule] || [rule.rule, null, null];
      const policy = byAgent.get(rule.agent_id);
      const amount = policy && field && policy[field] !== null ? " " + plural(policy[field], unit)
        : "";
      const verb = rule.action === "end" ? (r.dry_run ? "would end" : "ended")
        : (r.dry_run ? "would delete" : "deleted");
      const ids = el("ul", { class: "policy-ids" });
      for (const id of rule.session_ids) {
        ids.append(el("li", {}, el("a", { href: "/sessions?id=" + encodeURIComponent(id),
          text: id, onclick: (e) => { e.preventDefault(); showDetail(id); } })));
      }
      box.append(el("li", { class: "policy-rule", "data-agent-id": rule.agent_id,
        "data-rule": rule.rule, "data-count": rule.count },
        el("div", {}, el("strong", { text: agentName(rule.agent_id) }),
          " · " + words + amount + ": " + verb + " " + plural(rule.count, "session") +
          " (" + plural(rule.message_count, "message") + ")"),
        rule.session_ids.length ? ids : null));
    }
  }

  async function previewRun() {
    try {
      const r = await api("/policies/run?dry_run=true", { method: "POST" });
      showRun(r);
      policySay(r.rules.length
        ? "A run now would end " + plural(r.ended_count, "session") + " and delete " +
          plural(r.deleted_count, "session") + "."
        : "No policy has a rule: a run would do nothing.",
        r.deleted_count || r.ended_count ? "warn" : "ok");
    } catch (err) { policySay("Preview failed: " + err.message, "error"); }
  }

  async function runNow() {
    if (!window.confirm("Apply every retention policy now? Sessions they match are ended or " +
      "deleted with all their messages.")) return;
    const button = $("policy-run");
    button.disabled = true;
    try {
      const r = await api("/policies/run", { method: "POST" });
      showRun(r);
      policySay("Ended " + plural(r.ended_count, "session") + ", deleted " +
        plural(r.deleted_count, "session") + ".", "ok");
      await refreshAll();
    } catch (err) {
      policySay("Run failed: " + err.message, "error");
    } finally { button.disabled = false; }
  }

  /* ── wiring ──────────────────────────────────────────────────────────── */

  let searchTimer = null;
  for (const id of ["search", "filter-user", "filter-meta"]) {
    $(id).addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { state.offset = 0; loadTable(); }, 300);
    });
  }
  for (const id of ["filter-agent", "filter-status"]) {
    $(id).addEventListener("change", () => { state.offset = 0; loadTable(); });
  }
  $("refresh").addEventListener("click", refreshAll);
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    loadTable();
  });
  $("next").addEventListener("click", () => { state.offset += PAGE; loadTable(); });
  $("detail-close").addEventListener("click", () => {
    closeDetail();
    loadTable();
  });
  $("detail-export").addEventListener("click", exportSelected);
  $("detail-end").addEventListener("click", endSelected);
  $("detail-delete").addEventListener("click", deleteSelected);
  $("purge-ghosts").addEventListener("click", purgeGhosts);
  $("prune-check").addEventListener("click", pruneCheck);
  $("prune-confirm").addEventListener("click", pruneConfirm);
  $("prune-days").addEventListener("input", () => { $("prune-confirm").hidden = true; });
  $("policy-form").addEventListener("submit", savePolicy);
  $("policy-preview").addEventListener("click", previewRun);
  $("policy-run").addEventListener("click", runNow);
  SK.wireKeyButton($("api-key"));

  SK.showModel($("model"));
  showMaintenance();
  showPolicies();
  refreshAll();
  const wanted = new URLSearchParams(window.location.search).get("id");
  if (wanted) showDetail(wanted);
})();
