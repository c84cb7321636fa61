// medtune chat page: streams answers from /v1/chat/completions (SSE) and shows the safety
// report (risk level, warnings, disclaimer) next to each answer. No external assets.
"use strict";

const HISTORY_MESSAGES = 4; // earlier messages sent along with a new question
const history = [];

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadInfo() {
  try {
    const res = await fetch("/health");
    const info = await res.json();
    $("model-name").textContent = info.model;
    $("adapter-name").textContent = info.adapter || "none (base model)";
    $("device").textContent = info.device + (info.safety ? " · safety on" : " · safety off");
    $("key-label").hidden = !info.auth_required;
    $("max-tokens").max = info.max_tokens_limit;
  } catch (err) {
    $("model-name").textContent = "unreachable";
  }
}

function renderSafety(panel, report) {
  panel.replaceChildren();
  if (!report) {
    panel.append(el("h3", null, "Safety check off"));
    return;
  }
  const head = el("h3", null, "Safety ");
  head.append(el("span", "risk risk-" + report.risk_level, "risk " + report.risk_level + "/3 · " + report.action));
  panel.append(head);
  if (report.warnings.length === 0) {
    panel.append(el("div", "no-warnings", "No warnings."));
  } else {
    const list = el("ul", "warnings");
    for (const w of report.warnings) {
      const item = el("li");
      item.append(el("strong", null, w.category + (w.subcategory ? " / " + w.subcategory : "") + ": "));
      item.append(document.createTextNode(w.message));
      list.append(item);
    }
    panel.append(list);
  }
  if (report.disclaimer) panel.append(el("div", "disclaimer", report.disclaimer));
}

function shownText(report, streamed) {
  if (!report) return streamed;
  let text = report.final_text;
  if (report.disclaimer && text.endsWith(report.disclaimer)) {
    text = text.slice(0, text.length - report.disclaimer.length);
  }
  return text.trim();
}

async function ask(question) {
  const log = $("log");
  const userTurn = el("div", "turn user");
  userTurn.append(el("div", "bubble", question));
  const turn = el("div", "turn assistant streaming");
  const bubble = el("div", "bubble answer");
  const panel = el("aside", "safety", "Checking…");
  turn.append(bubble, panel);
  log.append(userTurn, turn);
  turn.scrollIntoView({ block: "end" });

  const messages = history.slice(-HISTORY_MESSAGES).concat([{ role: "user", content: question }]);
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) headers["Authorization"] = "Bearer " + key;
  const body = {
    messages,
    stream: true,
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
  };
  let streamed = "";
  let report;
  try {
    const res = await fetch("/v1/chat/completions", { method: "POST", headers, body: JSON.stringify(body) });
    if (!res.ok) {
      const err = await res.json().catch(() => ({ error: { message: res.statusText } }));
      throw new Error(res.status + ": " + err.error.message);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.code + ": " + chunk.error.message);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          streamed += delta.content;
          bubble.textContent = streamed;
        }
        if ("safety_report" in chunk) report = chunk.safety_report;
      }
    }
    bubble.textContent = shownText(report, streamed);
    renderSafety(panel, report);
    history.push({ role: "user", content: question }, { role: "assistant", content: bubble.textContent });
  } catch (err) {
    panel.replaceChildren(el("div", "error", "Error " + err.message));
  } finally {
    turn.classList.remove("streaming");
    turn.classList.add("done");
    turn.scrollIntoView({ block: "end" });
  }
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("send").disabled = true;
  $("question").value = "";
  try {
    await ask(question);
  } finally {
    $("send").disabled = false;
    $("question").focus();
  }
});

$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("ask").requestSubmit();
  }
});

loadInfo();
