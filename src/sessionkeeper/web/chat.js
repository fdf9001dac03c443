/* The chat page. A session exists only once its first message is sent: "New chat" clears the
 * view and nothing else, and loading this page only reads (who the key is, model info, the
 * session list, and the transcript named in ?session=).
 *
 * A failed model call is shown once, where it happened: a reply cut short keeps its text
 * with a "partial" badge and the error; a call that brought nothing leaves no empty bubble,
 * just the error. Either way a Retry button asks the server to answer the same message again
 * (`retry: true`): the message is not stored twice.
 *
 * Editing an earlier message of yours rewinds the session to just before it (POST …/rewind:
 * nothing is deleted, the earlier attempt moves to a branch session) and sends the edited
 * text as a new turn. A turn with other attempts shows a "‹ 2/2 ›" switcher: the attempts of
 * the turn at seq k are the sessions that share messages 1..k-1 and diverge at k (the session
 * the branches were made from, last, and its branches with fork_seq k-1, oldest first);
 * switching opens that session. */
"use strict";

(() => {
  const { api, streamChat, el, clear, dayGroup, GROUPS, when, fullTime, plural } = SK;
  const $ = (id) => document.getElementById(id);
  const ui = {
    groups: $("session-groups"), sidebarEmpty: $("sidebar-empty"), title: $("conv-title"),
    meta: $("conv-meta"), actions: $("conv-actions"), notice: $("notice"),
    transcript: $("transcript"), empty: $("empty-state"), composer: $("composer"),
    input: $("input"), send: $("send"), search: $("sidebar-search"), more: $("sidebar-more"),
    agentPick: $("agent-pick"), agent: $("agent"),
  };
  const SIDEBAR_PAGE = 30;
  const OTHER_AGENT = "";  // the picker's "Other agent…" entry (no agent id is empty)
  const state = {
    session: null, streaming: false,
    // The sidebar: the sessions loaded so far (pages of SIDEBAR_PAGE, newest first), the
    // cursor of the next page, and the search they match.
    sessions: [], cursor: null, hasMore: false, pages: 0, search: "",
    me: null, agents: [],
  };

  function notice(text, kind) {
    ui.notice.hidden = !text;
    ui.notice.textContent = text || "";
    ui.notice.className = "notice" + (kind ? " " + kind : "");
  }

  function setUrl(sessionId) {
    const url = sessionId ? "/chat?session=" + encodeURIComponent(sessionId) : "/chat";
    if (window.location.pathname + window.location.search !== url) {
      window.history.replaceState(null, "", url);
    }
  }

  /* ── who may start what: the agent picker ───────────────────────────── */

  /* A key of one agent starts its chats there (no picker). A key of several agents picks
   * among them; an admin key (or the open API) among the agents that have sessions, or
   * names another. */
  async function setupAgents() {
    const me = await SK.whoami();
    state.me = me;
    if (!me) return;
    let agents = me.agent_ids;
    if (!agents) {
      agents = ["main"];
      try {
        const st = await api("/sessions/stats");
        agents = [...new Set(["main", ...Object.keys(st.by_agent).sort()])];
      } catch (_) { /* keep "main" */ }
    }
    state.agents = agents;
    clear(ui.agent);
    for (const a of agents) ui.agent.append(el("option", { value: a, text: a }));
    if (!me.agent_ids) {
      ui.agent.append(el("option", { value: OTHER_AGENT, "data-other": true, text: "Other agent…" }));
    }
    ui.agent.value = me.default_agent_id && agents.includes(me.default_agent_id)
      ? me.default_agent_id : agents[0];
    ui.agent.dataset.chosen = ui.agent.value;
    showHeader();
  }

  function pickerWanted() {
    const me = state.me;
    return !!me && (!me.agent_ids || me.agent_ids.length > 1);
  }

  function chooseOtherAgent() {
    if (ui.agent.value !== OTHER_AGENT) {
      ui.agent.dataset.chosen = ui.agent.value;
      return;
    }
    const name = (window.prompt("Agent id for the new chat:", "") || "").trim();
    if (name) {
      if (!state.agents.includes(name)) {
        state.agents.push(name);
        ui.agent.insertBefore(el("option", { value: name, text: name }),
          ui.agent.querySelector("option[data-other]"));
      }
      ui.agent.value = name;
    } else {
      ui.agent.value = ui.agent.dataset.chosen || state.agents[0];
    }
    ui.agent.dataset.chosen = ui.agent.value;
  }

  /* The agent_id a new chat is sent with; null: let the server choose (its default). */
  function newChatAgent() {
    if (pickerWanted() && ui.agent.value !== OTHER_AGENT) return ui.agent.value;
    return state.me ? state.me.default_agent_id : null;
  }

  /* ── sidebar ─────────────────────────────────────────────────────────── */

  /* On narrow screens the list is a drawer over the conversation (CSS shows it only with
   * .sidebar-open); on wide screens it is always beside it and these do nothing visible. */
  function showSidebar(open) {
    $("chat-layout").classList.toggle("sidebar-open", open);
    $("show-sidebar").setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  }

  // Sessions without messages are not conversations (ghosts made elsewhere): not listed.
  const conversation = (s) => s.message_count > 0;

  function fetchSessions(cursor) {
    const q = new URLSearchParams({ limit: SIDEBAR_PAGE, sort: "updated_at", order: "desc" });
    if (state.search) q.set("search", state.search);
    if (cursor) q.set("cursor", cursor);
    return api("/sessions?" + q);
  }

  /* The newest page again (after a message, a rename…). Pages loaded further down stay:
   * the fresh page goes on top and replaces their copies of the same sessions. */
  async function loadSidebar() {
    const search = state.search;
    let page;
    try { page = await fetchSessions(null); } catch (err) {
      if (search === state.search) sidebarFailed(err);
      return;
    }
    if (search !== state.search) return;  // a newer search has replaced this one
    const fresh = page.sessions.filter(conversation);
    if (state.pages <= 1) {
      state.sessions = fresh;
      state.cursor = page.next_cursor;
      state.hasMore = page.has_more;
      state.pages = 1;
    } else {
      const ids = new Set(fresh.map((s) => s.session_id));
      state.sessions = fresh.concat(state.sessions.filter((s) => !ids.has(s.session_id)));
    }
    renderSidebar();
  }

  async function loadMore() {
    const search = state.search;
    ui.more.disabled = true;
    let page;
    try { page = await fetchSessions(state.cursor); } catch (err) {
      ui.more.disabled = false;
      if (search === state.search) sidebarFailed(err);
      return;
    }
    ui.more.disabled = false;
    if (search !== state.search) return;
    const have = new Set(state.sessions.map((s) => s.session_id));
    state.sessions = state.sessions.concat(
      page.sessions.filter((s) => conversation(s) && !have.has(s.session_id)));
    state.cursor = page.next_cursor;
    state.hasMore = page.has_more;
    state.pages += 1;
    renderSidebar();
  }

  function sidebarFailed(err) {
    state.sessions = [];
    state.hasMore = false;
    renderSidebar();
    ui.sidebarEmpty.textContent = (state.search ? "Search failed: " : "Could not load conversations: ")
      + err.message;
  }

  function searchSidebar() {
    const q = ui.search.value.trim();
    if (q === state.search) return;
    state.search = q;
    state.pages = 0;
    state.cursor = null;
    loadSidebar();
  }

  function renderSidebar() {
    clear(ui.groups);
    ui.sidebarEmpty.hidden = state.sessions.length > 0;
    ui.sidebarEmpty.textContent = state.search
      ? "No conversation matches “" + state.search + "”." : "No conversations yet.";
    ui.more.hidden = !state.hasMore;
    const now = new Date();
    const byGroup = new Map(GROUPS.map((g) => [g, []]));
    for (const s of state.sessions) byGroup.get(dayGroup(s.updated_at, now)).push(s);
    for (const [name, items] of byGroup) {
      if (!items.length) continue;
      const list = el("ul", { class: "session-list" });
      for (const s of items) {
        const active = state.session && state.session.session_id === s.session_id;
        const meta = [s.agent_id !== "main" ? s.agent_id : null, plural(s.message_count, "msg"),
          s.parent_session_id ? "branch" : null, s.status === "ended" ? "ended" : null]
          .filter(Boolean).join(" · ");
        list.append(el("li", {},
          el("button", {
            type: "button", class: "session-item" + (active ? " active" : ""),
            "data-session-id": s.session_id, title: s.title || s.session_id,
            onclick: () => openSession(s.session_id),
          },
          el("span", { class: "session-title", text: s.title || "Untitled" }),
          el("span", { class: "session-meta", text: meta }))));
      }
      ui.groups.append(el("section", { class: "session-group" },
        el("h3", { text: name }), list));
    }
  }

  function forgetInSidebar(sessionId) {
    state.sessions = state.sessions.filter((s) => s.session_id !== sessionId);
    renderSidebar();
  }

  /* ── conversation ────────────────────────────────────────────────────── */

  function showHeader() {
    const s = state.session;
    ui.actions.hidden = !s;
    ui.title.textContent = s ? (s.title || "Untitled") : "New chat";
    ui.title.title = s ? (s.title || s.session_id) : "";
    ui.meta.textContent = s
      ? [s.agent_id, s.status, plural(s.message_count, "message"),
         plural(s.token_count, "token")].join(" · ")
      : "";
    const ended = !!s && s.status === "ended";
    $("end").disabled = ended;
    ui.input.disabled = ended;
    ui.send.disabled = ended || state.streaming;
    ui.agentPick.hidden = !!s || !pickerWanted();
    ui.agent.disabled = state.streaming;
    for (const b of document.querySelectorAll("button.retry, button.edit-msg, .variants button")) {
      b.disabled = state.streaming || (b.classList.contains("edit-msg") && ended) ||
        b.dataset.end === "true";
    }
    ui.input.placeholder = ended
      ? "This session has ended; start a new chat to continue."
      : "Message… (Enter to send, Shift+Enter for a new line)";
  }

  /* Assistant replies are Markdown; what people, tools and system prompts wrote is shown as
   * written. */
  function fillBubble(bubble, role, text) {
    if (role === "assistant") SK.renderMarkdown(bubble, text);
    else bubble.textContent = text;
  }

  function messageNode(m) {
    const label = { user: "You", assistant: "Assistant", system: "System", tool: "Tool" }[m.role]
      || m.role;
    const body = el("div", { class: "bubble" });
    fillBubble(body, m.role, m.content);
    const meta = el("div", { class: "msg-meta" });
    const node = el("article", { class: "msg " + m.role, "data-role": m.role },
      el("div", { class: "msg-role", text: label }), body, meta);
    fillMeta(node, m);
    return node;
  }

  function fillMeta(node, m) {
    const meta = node.querySelector(".msg-meta");
    clear(meta);
    const md = m.metadata || {};
    if (md.echo) meta.append(el("span", { class: "badge echo", text: "echo model" }));
    else if (m.role === "assistant" && m.model) meta.append(el("span", { text: m.model }));
    if (md.tool_calls) meta.append(el("span", { class: "badge", text: "tool call" }));
    if (md.partial) {
      meta.append(el("span", { class: "badge warn", text: "partial" }),
        el("span", { class: "msg-error", text: md.error || "" }));
    }
    if (m.created_at) meta.append(el("time", { datetime: m.created_at, text: when(m.created_at),
      title: fullTime(m.created_at) }));
    if (m.role === "user" && m.seq) {
      const ended = !!state.session && state.session.status === "ended";
      meta.append(el("button", { type: "button", class: "link edit-msg", text: "Edit",
        "aria-label": "Edit this message and send it again",
        title: "Edit and send again (the earlier attempt is kept)",
        disabled: state.streaming || ended, onclick: () => startEdit(node, m) }));
    }
    node.dataset.seq = m.seq || "";
  }

  /* ── editing an earlier message ─────────────────────────────────────── */

  function closeEditors() {
    for (const form of ui.transcript.querySelectorAll("form.edit-form")) {
      const node = form.closest(".msg");
      form.remove();
      node.querySelector(".bubble").hidden = false;
      node.querySelector(".msg-meta").hidden = false;
    }
  }

  /* The message's bubble becomes a box with its text: Enter (or Send) sends it as the new
   * version of that turn, Escape (or Cancel) leaves it as it was. */
  function startEdit(node, m) {
    if (state.streaming || !state.session) return;
    closeEditors();
    const box = el("textarea", { class: "edit-input", rows: 3,
      "aria-label": "Edited message (Enter to send, Shift+Enter for a new line, Escape to cancel)" });
    box.value = m.content;
    const cancel = () => { closeEditors(); node.querySelector(".edit-msg").focus(); };
    const form = el("form", { class: "edit-form", autocomplete: "off" }, box,
      el("div", { class: "edit-actions" },
        el("span", { class: "muted small", text: "The earlier attempt is kept: ‹ › switches." }),
        el("button", { type: "button", class: "edit-cancel", text: "Cancel", onclick: cancel }),
        el("button", { type: "submit", class: "primary edit-send", text: "Send" })));
    form.addEventListener("submit", (e) => { e.preventDefault(); sendEdit(node, m, box.value); });
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); cancel(); }
      else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendEdit(node, m, box.value);
      }
    });
    node.querySelector(".bubble").hidden = true;
    node.querySelector(".msg-meta").hidden = true;
    node.querySelector(".msg-role").after(form);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  /* Rewind to just before the message (the earlier attempt goes to a branch, nothing is
   * deleted), then send the edited text as a new turn. */
  async function sendEdit(node, m, content) {
    if (state.streaming || !state.session || !content.trim()) return;
    const sid = state.session.session_id;
    state.streaming = true;  // no other turn, edit or switch until this one is answered
    showHeader();
    notice("");
    let rewound;
    try {
      rewound = await api("/sessions/" + encodeURIComponent(sid) + "/rewind",
        { method: "POST", json: { to_seq: m.seq - 1 } });
    } catch (err) {
      state.streaming = false;
      showHeader();
      notice("Edit failed: " + err.message, "error");
      return;
    }
    state.streaming = false;
    state.session = rewound.session;
    // The view keeps messages 1..seq-1; the rest is the earlier attempt, now in the branch.
    for (let n = node; n;) {
      const next = n.nextElementSibling;
      n.remove();
      n = next;
    }
    const userNode = messageNode({ role: "user", content });
    ui.transcript.append(userNode);
    await runTurn({ session_id: sid, content }, { userNode, replaces: null, content });
    if (state.session && state.session.session_id === sid) await showVariants();
  }

  /* ── other attempts of a turn: the ‹ n/N › switcher ─────────────────── */

  const branchesOf = (id) => api("/sessions/" + encodeURIComponent(id) + "/branches")
    .then((r) => r.branches);

  /* Put a switcher on each of the open session's user messages that has other attempts. */
  async function showVariants() {
    const s = state.session;
    if (!s) return;
    let own, parent = null, siblings = [];
    try {
      own = await branchesOf(s.session_id);
      if (s.parent_session_id) {
        try {
          [parent, siblings] = await Promise.all([
            api("/sessions/" + encodeURIComponent(s.parent_session_id)),
            branchesOf(s.parent_session_id)]);
        } catch (err) {
          if (err.status !== 404) throw err;  // the parent is gone (or not this key's)
        }
      }
    } catch (err) {
      if (state.session === s) notice("Could not load the other attempts: " + err.message, "error");
      return;
    }
    if (state.session !== s) return;  // another conversation was opened meanwhile
    for (const old of ui.transcript.querySelectorAll(".variants")) old.remove();
    for (const node of ui.transcript.querySelectorAll(".msg.user[data-seq]")) {
      const k = Number(node.dataset.seq);
      if (!k) continue;
      const fromParent = parent && s.fork_seq === k - 1;
      const root = fromParent ? parent : s;
      const kids = fromParent ? siblings : own;
      const attempts = kids.filter((b) => b.fork_seq === k - 1 && b.message_count >= k);
      if (root.message_count >= k) attempts.push(root);
      const at = attempts.findIndex((b) => b.session_id === s.session_id);
      if (attempts.length < 2 || at < 0) continue;
      node.querySelector(".msg-meta").prepend(switcher(attempts, at, k));
    }
    showHeader();
  }

  function switcher(attempts, at, seq) {
    const go = (i, button) => () => openSession(attempts[i].session_id, { seq, button });
    const first = at === 0;
    const last = at === attempts.length - 1;
    return el("span", { class: "variants", role: "group",
      "aria-label": "Attempt " + (at + 1) + " of " + attempts.length },
    el("button", { type: "button", class: "link variant-prev", text: "‹",
      "aria-label": "Earlier attempt", "data-end": String(first),
      disabled: first || state.streaming, onclick: first ? null : go(at - 1, "variant-prev") }),
    el("span", { class: "variant-pos", text: (at + 1) + "/" + attempts.length }),
    el("button", { type: "button", class: "link variant-next", text: "›",
      "aria-label": "Later attempt", "data-end": String(last),
      disabled: last || state.streaming, onclick: last ? null : go(at + 1, "variant-next") }));
  }

  function focusSwitcher({ seq, button }) {
    const box = ui.transcript.querySelector(".msg.user[data-seq='" + seq + "'] .variants");
    if (!box) return;
    const wanted = box.querySelector("." + button);
    (wanted && !wanted.disabled ? wanted : box.querySelector("button:not([disabled])") || box)
      .focus();
  }

  function scrollDown() { ui.transcript.scrollTop = ui.transcript.scrollHeight; }

  function showEmpty() {
    clear(ui.transcript).append(ui.empty);
  }

  /* The Retry row under a turn that got no complete reply. `detail`: the error, unless the
   * partial reply above already shows it. `partial`: that reply's node (replaced once the
   * retry is answered). */
  function offerRetry(content, detail, partial) {
    for (const old of ui.transcript.querySelectorAll(".turn-error")) old.remove();
    const row = el("div", { class: "turn-error", role: "alert" },
      detail ? el("span", { class: "msg-error", text: detail }) : null,
      el("button", { type: "button", class: "retry", disabled: state.streaming,
        onclick: () => retry(content, row, partial) }, "Retry"));
    ui.transcript.append(row);
    scrollDown();
  }

  async function retry(content, row, partial) {
    if (state.streaming || !state.session) return;
    row.remove();
    await runTurn({ session_id: state.session.session_id, content, retry: true },
      { userNode: null, replaces: partial || null, content });
  }

  /* `keepFocus` ({seq, button}): opened by a switcher, whose counterpart in the new view gets
   * the focus (keyboard users stay on it). */
  async function openSession(sessionId, keepFocus) {
    if (state.streaming) return;
    showSidebar(false);
    notice("");
    try {
      const [session, list] = await Promise.all([
        api("/sessions/" + encodeURIComponent(sessionId)),
        api("/sessions/" + encodeURIComponent(sessionId) + "/messages?last=500"),
      ]);
      state.session = session;
      clear(ui.transcript);
      if (!list.messages.length) ui.transcript.append(ui.empty);
      let lastNode = null;
      for (const m of list.messages) ui.transcript.append(lastNode = messageNode(m));
      setUrl(session.session_id);
      showHeader();
      renderSidebar();
      if (session.status !== "ended") offerRetryAtEnd(list.messages, lastNode);
      scrollDown();
      await showVariants();
      if (keepFocus) focusSwitcher(keepFocus);
    } catch (err) {
      if (err.status === 404) {
        notice("That conversation no longer exists.", "error");
        newChat();
      } else {
        notice("Could not open the conversation: " + err.message, "error");
      }
    }
  }

  /* A conversation that ends with a message still waiting for its reply (the model failed,
   * or the reply was cut short) can be answered again from here. */
  function offerRetryAtEnd(messages, lastNode) {
    const last = messages[messages.length - 1];
    const before = messages[messages.length - 2];
    if (last && last.role === "user") {
      offerRetry(last.content, "No reply to this message yet.", null);
    } else if (last && last.role === "assistant" && (last.metadata || {}).partial &&
               before && before.role === "user") {
      offerRetry(before.content, null, lastNode);
    }
  }

  function newChat() {
    if (state.streaming) return;
    showSidebar(false);
    state.session = null;
    setUrl(null);
    showEmpty();
    showHeader();
    renderSidebar();
    ui.input.focus();
  }

  async function sendMessage() {
    const content = ui.input.value;
    if (!content.trim() || state.streaming) return;
    ui.input.value = "";
    if (ui.empty.parentNode) ui.empty.remove();
    for (const old of ui.transcript.querySelectorAll(".turn-error")) old.remove();
    const userNode = messageNode({ role: "user", content });
    ui.transcript.append(userNode);
    const body = { content };
    if (state.session) body.session_id = state.session.session_id;
    else {
      const agent = newChatAgent();
      if (agent) body.agent_id = agent;
    }
    await runTurn(body, { userNode, replaces: null, content });
  }

  /* One turn over the stream: a new message (userNode: its bubble, already shown) or a retry
   * (replaces: the partial reply it answers anew, if any). */
  async function runTurn(body, turn) {
    notice("");
    state.streaming = true;
    showHeader();
    const replyNode = messageNode({ role: "assistant", content: "" });
    replyNode.classList.add("streaming");
    replyNode.dataset.state = "streaming";
    ui.transcript.append(replyNode);
    scrollDown();
    const bubble = replyNode.querySelector(".bubble");
    let text = "";
    let started = false;  // the server stored the message (or took the retry)
    let failure = null;  // why no complete reply came
    let partial = null;  // the partial reply the server kept, if any
    let drawing = false;
    const draw = () => {  // at most once a frame while the reply streams
      if (drawing) return;
      drawing = true;
      requestAnimationFrame(() => {
        drawing = false;
        if (replyNode.dataset.state === "streaming") {
          fillBubble(bubble, "assistant", text);
          scrollDown();
        }
      });
    };
    try {
      await streamChat(body, (name, data) => {
        if (name === "session") {
          started = true;
          if (data.created || !state.session) {
            state.session = { session_id: data.session_id, title: data.title,
              agent_id: data.agent_id, status: "active", message_count: 1, token_count: 0 };
            setUrl(data.session_id);
          } else {
            state.session.title = data.title;
          }
          if (turn.userNode) fillMeta(turn.userNode, data.user_message);
          showHeader();
          loadSidebar();
        } else if (name === "delta") {
          text += data.text;
          draw();
        } else if (name === "done") {
          replyNode.dataset.state = "done";
          fillBubble(bubble, "assistant", data.message.content);
          fillMeta(replyNode, data.message);
          if (turn.replaces) turn.replaces.remove();  // the server deleted it
        } else if (name === "error") {
          replyNode.dataset.state = "error";
          failure = data.detail;
          partial = data.message;
        }
      });
      if (replyNode.dataset.state === "streaming") {
        replyNode.dataset.state = "error";
        failure = "The connection closed before the reply finished.";
      }
    } catch (err) {
      if (!started) {
        // Refused before anything was stored (duplicate, ended, too large…): undo the view.
        replyNode.remove();
        if (turn.userNode) {
          turn.userNode.remove();
          ui.input.value = turn.content;
          if (!ui.transcript.children.length) showEmpty();
        }
        notice(err.status === 409 || !turn.userNode ? err.message : "Not sent: " + err.message,
          "error");
      } else {
        replyNode.dataset.state = "error";
        failure = "The connection was lost: " + err.message;
      }
    } finally {
      replyNode.classList.remove("streaming");
      state.streaming = false;
    }
    if (failure !== null) {
      if (partial) {
        // The text that arrived is kept (stored, marked partial, with the error).
        fillBubble(bubble, "assistant", partial.content);
        fillMeta(replyNode, partial);
        if (turn.replaces) turn.replaces.remove();  // the new partial replaced it
        offerRetry(turn.content, null, replyNode);
      } else if (text) {
        fillBubble(bubble, "assistant", text);  // seen, maybe not stored: retry replaces it
        offerRetry(turn.content, failure, replyNode);
      } else {
        replyNode.remove();  // nothing arrived: no empty bubble
        offerRetry(turn.content, failure, turn.replaces);
      }
    }
    if (state.session) await refreshSession();
    showHeader();
    if (!ui.transcript.querySelector("form.edit-form")) ui.input.focus();  // not from an editor
  }

  async function refreshSession() {
    try {
      state.session = await api("/sessions/" + encodeURIComponent(state.session.session_id));
    } catch (_) { /* deleted meanwhile: keep what we have */ }
    await loadSidebar();
  }

  /* ── actions ─────────────────────────────────────────────────────────── */

  async function rename() {
    const s = state.session;
    const title = window.prompt("Rename this conversation:", s.title || "");
    if (title === null) return;
    try {
      state.session = await api("/sessions/" + encodeURIComponent(s.session_id),
        { method: "PATCH", json: { title: title.trim() || null } });
      showHeader();
      await loadSidebar();
    } catch (err) { notice("Rename failed: " + err.message, "error"); }
  }

  async function exportSession() {
    const s = state.session;
    try {
      await SK.download("/sessions/" + encodeURIComponent(s.session_id) + "/export",
        s.session_id + ".jsonl");
    } catch (err) { notice("Export failed: " + err.message, "error"); }
  }

  async function endSession() {
    const s = state.session;
    if (!window.confirm("End this conversation? It stays readable but takes no new messages.")) {
      return;
    }
    try {
      state.session = await api("/sessions/" + encodeURIComponent(s.session_id) + "/end",
        { method: "POST" });
      for (const old of ui.transcript.querySelectorAll(".turn-error")) old.remove();
      showHeader();
      await loadSidebar();
    } catch (err) { notice("End failed: " + err.message, "error"); }
  }

  async function deleteSession() {
    const s = state.session;
    if (!window.confirm("Delete this conversation and all its messages? This cannot be undone.")) {
      return;
    }
    try {
      await api("/sessions/" + encodeURIComponent(s.session_id), { method: "DELETE" });
      forgetInSidebar(s.session_id);
      newChat();
      await loadSidebar();
      notice("Conversation deleted.");
    } catch (err) { notice("Delete failed: " + err.message, "error"); }
  }

  /* ── wiring ──────────────────────────────────────────────────────────── */

  $("new-chat").addEventListener("click", newChat);
  $("show-sidebar").addEventListener("click", () => showSidebar(true));
  $("hide-sidebar").addEventListener("click", () => {
    showSidebar(false);
    $("show-sidebar").focus();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && $("chat-layout").classList.contains("sidebar-open")) {
      showSidebar(false);
      $("show-sidebar").focus();
    }
  });
  let searchTimer = null;
  ui.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchSidebar, 300);
  });
  ui.more.addEventListener("click", loadMore);
  ui.agent.addEventListener("change", chooseOtherAgent);
  $("rename").addEventListener("click", rename);
  $("export").addEventListener("click", exportSession);
  $("end").addEventListener("click", endSession);
  $("delete").addEventListener("click", deleteSession);
  SK.wireKeyButton($("api-key"));
  ui.composer.addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendMessage();
    }
  });

  SK.showModel($("model"));
  const wanted = new URLSearchParams(window.location.search).get("session");
  showHeader();
  setupAgents();
  if (wanted) openSession(wanted);
  loadSidebar();
})();
