/* The chat page. A session exists only once its first message is sent: "New chat" clears the
 * view and nothing else, and loading this page only reads (model info, the session list, and
 * the transcript named in ?session=). */
"use strict";

(() => {
  const { api, streamChat, el, clear, dayGroup, GROUPS, when, fullTime, num } = SK;
  const $ = (id) => document.getElementById(id);
  const ui = {
    groups: $("session-groups"), sidebarEmpty: $("sidebar-empty"), title: $("conv-title"),
    meta: $("conv-meta"), actions: $("conv-actions"), notice: $("notice"),
    transcript: $("transcript"), empty: $("empty-state"), composer: $("composer"),
    input: $("input"), send: $("send"),
  };
  const state = { session: null, streaming: false, sessions: [] };

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

  /* ── sidebar ─────────────────────────────────────────────────────────── */

  /* On narrow screens the list is a drawer over the conversation (CSS shows it only with
   * .sidebar-open); on wide screens it is always beside it and these do nothing visible. */
  function showSidebar(open) {
    $("chat-layout").classList.toggle("sidebar-open", open);
    $("show-sidebar").setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  }

  async function loadSidebar() {
    try {
      const page = await api("/sessions?limit=100&sort=updated_at&order=desc");
      // Sessions without messages are not conversations (ghosts made elsewhere): not listed.
      state.sessions = page.sessions.filter((s) => s.message_count > 0);
    } catch (err) {
      notice("Could not load conversations: " + err.message, "error");
      return;
    }
    renderSidebar();
  }

  function renderSidebar() {
    clear(ui.groups);
    ui.sidebarEmpty.hidden = state.sessions.length > 0;
    const now = new Date();
    const byGroup = new Map(GROUPS.map((g) => [g, []]));
    for (const s of state.sessions) byGroup.get(dayGroup(s.updated_at, now)).push(s);
    for (const [name, items] of byGroup) {
      if (!items.length) continue;
      const list = el("ul", { class: "session-list" });
      for (const s of items) {
        const active = state.session && state.session.session_id === s.session_id;
        const meta = [s.agent_id !== "main" ? s.agent_id : null, num(s.message_count) + " msgs",
          s.status === "ended" ? "ended" : null].filter(Boolean).join(" · ");
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

  /* ── conversation ────────────────────────────────────────────────────── */

  function showHeader() {
    const s = state.session;
    ui.actions.hidden = !s;
    ui.title.textContent = s ? (s.title || "Untitled") : "New chat";
    ui.title.title = s ? (s.title || s.session_id) : "";
    ui.meta.textContent = s
      ? [s.agent_id, s.status, num(s.message_count) + " messages",
         num(s.token_count) + " tokens"].join(" · ")
      : "";
    const ended = !!s && s.status === "ended";
    $("end").disabled = ended;
    ui.input.disabled = ended;
    ui.send.disabled = ended || state.streaming;
    ui.input.placeholder = ended
      ? "This session has ended; start a new chat to continue."
      : "Message… (Enter to send, Shift+Enter for a new line)";
  }

  function messageNode(m) {
    const label = { user: "You", assistant: "Assistant", system: "System", tool: "Tool" }[m.role]
      || m.role;
    const body = el("div", { class: "bubble", text: m.content });
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
    node.dataset.seq = m.seq || "";
  }

  function scrollDown() { ui.transcript.scrollTop = ui.transcript.scrollHeight; }

  function showEmpty() {
    clear(ui.transcript).append(ui.empty);
  }

  async function openSession(sessionId) {
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
      for (const m of list.messages) ui.transcript.append(messageNode(m));
      setUrl(session.session_id);
      showHeader();
      renderSidebar();
      scrollDown();
    } catch (err) {
      if (err.status === 404) {
        notice("That conversation no longer exists.", "error");
        newChat();
      } else {
        notice("Could not open the conversation: " + err.message, "error");
      }
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
    notice("");
    state.streaming = true;
    showHeader();
    ui.input.value = "";
    if (ui.empty.parentNode) ui.empty.remove();
    const userNode = messageNode({ role: "user", content });
    const replyNode = messageNode({ role: "assistant", content: "" });
    replyNode.classList.add("streaming");
    replyNode.dataset.state = "streaming";
    ui.transcript.append(userNode, replyNode);
    scrollDown();
    const bubble = replyNode.querySelector(".bubble");
    const body = { content };
    if (state.session) body.session_id = state.session.session_id;
    let text = "";
    try {
      await streamChat(body, (name, data) => {
        if (name === "session") {
          if (data.created || !state.session) {
            state.session = { session_id: data.session_id, title: data.title,
              agent_id: data.agent_id, status: "active", message_count: 1, token_count: 0 };
            setUrl(data.session_id);
          } else {
            state.session.title = data.title;
          }
          fillMeta(userNode, data.user_message);
          showHeader();
          loadSidebar();
        } else if (name === "delta") {
          text += data.text;
          bubble.textContent = text;
          scrollDown();
        } else if (name === "done") {
          fillMeta(replyNode, data.message);
          replyNode.dataset.state = "done";
        } else if (name === "error") {
          if (data.message) fillMeta(replyNode, data.message);
          else replyNode.querySelector(".msg-meta").append(
            el("span", { class: "msg-error", text: data.detail }));
          replyNode.dataset.state = "error";
          notice("The model failed: " + data.detail, "error");
        }
      });
      if (replyNode.dataset.state === "streaming") {
        replyNode.dataset.state = "error";
        notice("The connection closed before the reply finished.", "error");
      }
    } catch (err) {
      // Refused before anything was stored (duplicate, ended, too large…): undo the view.
      if (!text) {
        userNode.remove();
        replyNode.remove();
        ui.input.value = content;
        if (!ui.transcript.children.length) showEmpty();
      }
      notice(err.status === 409 ? err.message : "Not sent: " + err.message, "error");
    } finally {
      replyNode.classList.remove("streaming");
      state.streaming = false;
      if (state.session) await refreshSession();
      showHeader();
      ui.input.focus();
    }
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

  async function endSession() {
    const s = state.session;
    if (!window.confirm("End this conversation? It stays readable but takes no new messages.")) {
      return;
    }
    try {
      state.session = await api("/sessions/" + encodeURIComponent(s.session_id) + "/end",
        { method: "POST" });
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
  $("rename").addEventListener("click", rename);
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
  if (wanted) openSession(wanted);
  loadSidebar();
})();
