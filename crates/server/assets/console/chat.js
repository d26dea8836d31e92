// The chat panel: sends a message to the API's own streaming endpoint and shows the answer as
// it arrives (phases, tool chips, tokens, usage, errors), stops it, and rejoins an answer
// that is still running after a reload or a dropped connection. All text from the server is
// put in the page as text; only the finished answer's HTML, sanitised by the server, is set
// as HTML.
const list = document.getElementById("messages");
const form = document.getElementById("composer");

if (list && form) {
  const session = list.dataset.session;
  const csrf = list.dataset.csrf;
  const api = `/rest/v1/ai-agent/api/sessions/${session}`;
  const input = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const status = document.getElementById("status");
  const PHASES = { thinking: "Thinking…", analyzing: "Analyzing…", preparing: "Preparing…" };
  const REJOINS = 3;
  let busy = false;

  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const scrollDown = () => list.lastElementChild?.scrollIntoView({ block: "end" });

  // Reads an SSE response: yields {id, data} for each event (comments skipped).
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null;
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
        if (data.length) yield { id, data: JSON.parse(data.join("\n")) };
      }
    }
  }

  // One answer being shown: its chips, its text, its usage line.
  function answerView() {
    const item = el("li", "message assistant");
    const chips = el("div", "chips");
    const bubble = el("div", "bubble streaming");
    const meta = el("p", "meta");
    item.append(chips, bubble, meta);
    list.append(item);
    return { item, chips, bubble, meta, calls: new Map(), tokens: 0, model: "", lastId: null, ended: false };
  }

  function toolStart(view, event) {
    const chip = el("details", "chip running");
    const summary = el("summary", null, `${event.tool} …`);
    chip.append(summary);
    if (event.arguments !== undefined) {
      chip.append(el("p", "chip-label", "Arguments"), el("pre", null, JSON.stringify(event.arguments, null, 2)));
    }
    view.chips.append(chip);
    view.calls.set(event.call_id || event.tool, { chip, summary, started: performance.now() });
  }

  function toolEnd(view, event) {
    const key = event.call_id || event.tool;
    const call = view.calls.get(key);
    if (!call) return;
    view.calls.delete(key);
    const seconds = ((performance.now() - call.started) / 1000).toFixed(1);
    call.summary.textContent = `${event.tool} · ${seconds} s`;
    call.chip.classList.remove("running");
    if (event.result !== undefined) call.chip.append(el("p", "chip-label", "Result"), el("pre", null, event.result));
  }

  function showError(view, event, message) {
    const box = el("div", "notice error");
    box.setAttribute("role", "alert");
    box.append(el("span", null, event.message));
    if (event.code === "cap_exceeded") {
      const link = el("a", null, "Top up in Billing");
      link.href = "/console/billing";
      box.append(" ", link);
    }
    if (event.retryable && message) {
      const retry = el("button", "secondary", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => { box.remove(); send(message); });
      box.append(" ", retry);
    }
    view.item.append(box);
  }

  // Shows one event; true once the turn's last event was shown.
  function show(view, event, message) {
    switch (event.type) {
      case "phase": status.textContent = PHASES[event.phase] || event.message; break;
      case "tool_start": toolStart(view, event); break;
      case "tool_end": toolEnd(view, event); break;
      case "token": view.bubble.append(document.createTextNode(event.content)); break;
      case "usage":
        view.tokens += (event.prompt_tokens || 0) + (event.completion_tokens || 0);
        view.model = event.model;
        view.meta.textContent = `${view.tokens} tokens · ${view.model}`;
        break;
      case "error": showError(view, event, message); return true;
      case "end": return true;
    }
    scrollDown();
    return false;
  }

  // Replaces the streamed text with the stored answer rendered by the server.
  async function finish(view) {
    status.textContent = "";
    try {
      const response = await fetch(`/console/chat/${session}/answer`, { credentials: "same-origin" });
      if (!response.ok) return;
      const fragment = document.createElement("template");
      fragment.innerHTML = await response.text();
      const rendered = fragment.content.querySelector(".bubble");
      if (rendered && rendered.textContent.trim()) view.bubble.replaceWith(rendered);
      const usage = fragment.content.querySelector(".meta");
      if (usage) view.meta.textContent = `${usage.textContent} · ${view.model}`.replace(/ · $/, "");
    } catch {
      // The streamed text stays.
    }
  }

  // Follows a response to its last event; false when the connection broke before it.
  async function follow(view, response, message) {
    try {
      for await (const event of events(response)) {
        if (event.id) view.lastId = event.id;
        if (show(view, event.data, message)) {
          view.ended = true;
          return true;
        }
      }
    } catch {
      // A dropped connection: rejoined below.
    }
    return false;
  }

  // Rejoins the session's turn after `view.lastId` (or from its start) until its end.
  async function rejoin(view) {
    for (let attempt = 0; attempt < REJOINS && !view.ended; attempt++) {
      const headers = { "X-CSRF-Token": csrf };
      if (view.lastId) headers["Last-Event-ID"] = view.lastId;
      let response;
      try {
        response = await fetch(`${api}/stream`, { headers, credentials: "same-origin" });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (!response.ok) break;
      if (await follow(view, response)) break;
    }
  }

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    stopButton.hidden = !value;
    if (!value) status.textContent = "";
  }

  async function send(message) {
    if (busy) return;
    setBusy(true);
    const item = el("li", "message user");
    item.append(el("div", "bubble", message));
    list.append(item);
    const view = answerView();
    scrollDown();
    status.textContent = PHASES.thinking;
    try {
      const response = await fetch(`${api}/chat/stream`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ message, on_disconnect: "continue", tool_details: true }),
      });
      if (!response.ok) {
        let body = {};
        try { body = await response.json(); } catch { /* not JSON */ }
        showError(view, { message: body.error || `The server answered ${response.status}.`, code: body.code }, null);
      } else if (!(await follow(view, response, message))) {
        await rejoin(view);
      }
      if (view.ended) await finish(view);
    } catch {
      showError(view, { message: "The connection failed. Check the network and retry.", retryable: true }, message);
    } finally {
      setBusy(false);
      view.bubble.classList.remove("streaming");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = input.value;
    if (!message.trim()) return;
    input.value = "";
    send(message);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    try {
      await fetch(`${api}/stop`, { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
    } finally {
      stopButton.disabled = false;
    }
  });

  // An answer still running (the page was reloaded mid-answer): show it from its start.
  if (list.dataset.running === "true") {
    (async () => {
      setBusy(true);
      const view = answerView();
      status.textContent = PHASES.thinking;
      await rejoin(view);
      if (view.ended) await finish(view);
      setBusy(false);
      view.bubble.classList.remove("streaming");
    })();
  }
  scrollDown();
}
