/* Shared by the chat page and the sessions dashboard: API calls (with the remembered API key),
 * SSE over fetch, safe DOM building, Markdown, downloads and date grouping. No framework, no
 * build step. Everything that shows user data goes through el()/textContent; the one
 * innerHTML is markdown-it's output with HTML off (see renderMarkdown). */
"use strict";

const SK = (() => {
  const KEY_STORAGE = "sessionkeeper.apiKey";
  const API = "/api/engine";
  let promptedThisPage = false;

  function apiKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (_) { return ""; }
  }

  function setApiKey(value) {
    try {
      if (value) localStorage.setItem(KEY_STORAGE, value);
      else localStorage.removeItem(KEY_STORAGE);
    } catch (_) { /* storage disabled: the key lives for this page only */ }
  }

  /* Ask for a key once per page after a 401; returns true when a new key was entered. */
  function askForKey(force) {
    if (promptedThisPage && !force) return false;
    promptedThisPage = true;
    const entered = window.prompt(
      "This server needs an API key.\nIt is kept in this browser (localStorage) and sent as " +
      "'Authorization: Bearer …'.", apiKey());
    if (entered === null || !entered.trim()) return false;
    setApiKey(entered.trim());
    return true;
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || ("HTTP " + status));
      this.status = status;
      this.body = body || {};
    }
  }

  async function errorOf(resp) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    return new ApiError(resp.status, body);
  }

  /* fetch() with the API key; on 401 asks for a key once and retries. */
  async function send(path, options) {
    const opts = Object.assign({}, options || {});
    const extra = Object.assign({}, opts.headers || {});
    if (opts.json !== undefined) {
      extra["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const sentKey = apiKey();
    opts.headers = headers(extra);
    let resp = await fetch(API + path, opts);
    // Retry once with a new key: one entered now, or by a concurrent request's prompt.
    if (resp.status === 401 && (apiKey() !== sentKey || askForKey())) {
      opts.headers = headers(extra);
      resp = await fetch(API + path, opts);
    }
    return resp;
  }

  async function api(path, options) {
    const resp = await send(path, options);
    if (!resp.ok) throw await errorOf(resp);
    return resp.status === 204 ? null : resp.json();
  }

  /* POST a chat message and call onEvent(name, data) for each Server-Sent Event.
   * EventSource cannot POST, so the stream is read with fetch + ReadableStream. */
  async function streamChat(body, onEvent) {
    const resp = await send("/chat/stream", { method: "POST", json: body });
    if (!resp.ok) throw await errorOf(resp);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer);
  }

  /* What the caller's key may do (GET /whoami), asked once per page; null if unknown. */
  let whoamiPromise = null;
  function whoami() {
    if (!whoamiPromise) whoamiPromise = api("/whoami").catch(() => null);
    return whoamiPromise;
  }

  /* Download an API resource (sent with the key, so not a plain link) under the name its
   * Content-Disposition gives. */
  async function download(path, fallbackName) {
    const resp = await send(path);
    if (!resp.ok) throw await errorOf(resp);
    const disposition = resp.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(await resp.blob());
    const link = el("a", { href: url, download: match ? match[1] : fallbackName, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  /* Copy text: the Clipboard API where the page may use it (https, localhost), else the old
   * way through a selected textarea (a server reached over plain http by address). */
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = el("textarea", { readonly: true, class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("the browser refused to copy");
  }

  /* Markdown (markdown-it, vendored in /static/vendor): CommonMark with tables,
   * strikethrough and bare links. HTML is off, so any HTML in a reply is shown as text;
   * markdown-it refuses javascript:/vbscript:/file:/data: links; images are off, so a reply
   * cannot make the page fetch from another server (a way to leak the conversation). */
  let markdown = null;
  function markdownRenderer() {
    if (markdown === null) {
      markdown = typeof window.markdownit === "function"
        ? window.markdownit({ html: false, linkify: true, breaks: true, typographer: false })
        : false;
      if (markdown) {
        markdown.disable("image");
        const render = markdown.renderer.rules.link_open ||
          ((tokens, i, options, env, self) => self.renderToken(tokens, i, options));
        markdown.renderer.rules.link_open = (tokens, i, options, env, self) => {
          tokens[i].attrSet("target", "_blank");
          tokens[i].attrSet("rel", "noopener noreferrer nofollow");
          return render(tokens, i, options, env, self);
        };
      }
    }
    return markdown;
  }

  function renderMarkdown(node, text) {
    const md = markdownRenderer();
    node.classList.toggle("md", !!md);
    if (!md) {  // the renderer did not load: plain text, as before
      node.textContent = text;
      return node;
    }
    node.innerHTML = md.render(text);
    for (const table of node.querySelectorAll("table")) {
      const wrap = el("div", { class: "md-table" });
      table.replaceWith(wrap);
      wrap.append(table);
    }
    for (const pre of node.querySelectorAll("pre")) {
      const code = pre.querySelector("code") || pre;
      const lang = /(?:^|\s)language-(\S+)/.exec(code.className || "");
      const button = el("button", { type: "button", class: "copy-code", text: "Copy",
        "aria-label": "Copy this code" });
      button.addEventListener("click", async () => {
        try {
          await copyText(code.textContent);
          button.textContent = "Copied";
        } catch (_) {
          button.textContent = "Copy failed";
        }
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
      const block = el("div", { class: "code-block" },
        el("div", { class: "code-head" },
          el("span", { class: "code-lang", text: lang ? lang[1] : "" }), button));
      pre.replaceWith(block);
      block.append(pre);
    }
    return node;
  }

  /* el("div", {class: "x", onclick: f}, "text", child…): text children become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { node.replaceChildren(); return node; }

  const DAY = 86400000;
  function startOfDay(d) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime(); }

  /* "Today" / "Yesterday" / "This week" (the last 7 days) / "Older", in local time. */
  function dayGroup(iso, now) {
    const t = startOfDay(new Date(iso));
    const today = startOfDay(now || new Date());
    if (t >= today) return "Today";
    if (t >= today - DAY) return "Yesterday";
    if (t >= today - 6 * DAY) return "This week";
    return "Older";
  }
  const GROUPS = ["Today", "Yesterday", "This week", "Older"];

  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const diff = (Date.now() - d.getTime()) / 1000;
    if (diff < 60) return "just now";
    if (diff < 3600) return Math.floor(diff / 60) + " min ago";
    if (diff < 86400) return Math.floor(diff / 3600) + " h ago";
    return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  }

  function fullTime(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

  function num(n) { return (n || 0).toLocaleString(); }

  /* "1 message", "2 messages": a count and its word, singular for one. */
  function plural(n, word) { return num(n) + " " + word + (n === 1 ? "" : "s"); }

  /* The model badge in the header: the echo model is labelled as such, loudly. */
  async function showModel(node) {
    try {
      const info = await api("/chat/model");
      node.textContent = info.echo ? info.label : "model: " + info.model;
      node.classList.toggle("echo", !!info.echo);
      node.title = info.echo
        ? "Replies repeat your message. Set SESSIONKEEPER_LLM_BASE_URL to use a real model."
        : "Replies come from " + info.model;
      return info;
    } catch (err) {
      node.textContent = "model unknown";
      return null;
    }
  }

  function wireKeyButton(button) {
    button.addEventListener("click", () => {
      if (askForKey(true)) window.location.reload();
    });
  }

  return {
    api, streamChat, el, clear, dayGroup, GROUPS, when, fullTime, num, showModel,
    wireKeyButton, ApiError, apiKey, setApiKey, whoami, download, copyText, renderMarkdown,
    plural,
  };
})();
