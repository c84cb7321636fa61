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
    renderProvenance(info);
  } catch (err) {
    $("model-name").textContent = "unreachable";
    $("provenance-list").replaceChildren(el("dt", null, "run manifest"), el("dd", "error", "server unreachable"));
  }
}

// Key metrics shown first when the run manifest has them (flattened `section.key` names).
const KEY_METRICS = ["train.steps", "train.best_eval_loss", "train.best_step", "train.final_eval_loss",
  "tuned.rouge_l_f", "tuned.token_f1", "tuned.bleu"];
const KEY_PARAMS = ["model.quantization", "lora.r", "lora.lora_alpha", "lora.target_modules", "optim.lr",
  "train.max_steps", "train.epochs", "train.batch_size", "train.seed"];

function fmtValue(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number" && !Number.isInteger(v)) {
    return Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toFixed(4);
  }
  if (Array.isArray(v)) return v.join(",");
  return String(v);
}

const shortSha = (sha) => (sha ? sha.slice(0, 12) : "–");

// The adapter's run manifest (from /health): model, adapter, dataset hashes, code version,
// key hyper-parameters and metrics, safety summary.
function renderProvenance(info) {
  const list = $("provenance-list");
  list.replaceChildren();
  const add = (key, value, full) => {
    const dd = el("dd", null, value);
    if (full) dd.title = full;
    list.append(el("dt", null, key), dd);
  };
  add("model", info.model);
  add("adapter", info.adapter || "none (base model)");
  const m = info.manifest;
  if (!m) {
    add("run manifest", "none (no manifest.json beside the adapter)");
    return;
  }
  if (!m.code_version) {
    add("run manifest", JSON.stringify(m));
    return;
  }
  add("base model", m.base_model + " (" + m.base_storage + ")");
  add("base model sha256", shortSha(m.base_model_sha256), m.base_model_sha256);
  const d = m.dataset || {};
  add("dataset", (d.name ? d.name + " · " : "") + d.dir);
  add("train split sha256", shortSha(d.train_file_sha256), d.train_file_sha256);
  add("eval split sha256", shortSha(d.eval_file_sha256), d.eval_file_sha256);
  if (d.split_seed !== null && d.split_seed !== undefined) add("split seed", String(d.split_seed));
  for (const input of d.inputs || []) add("input", input.path + " · " + shortSha(input.sha256), input.sha256);
  add("chat template sha256", shortSha(m.chat_template_sha256), m.chat_template_sha256);
  add("tokenizer sha256", shortSha(m.tokenizer_sha256), m.tokenizer_sha256);
  add("code version", m.code_version);
  if (m.created_unix_s) {
    add("trained", new Date(m.created_unix_s * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC");
  }
  const hp = m.hyper_parameters || {};
  const params = KEY_PARAMS.filter((k) => k in hp).map((k) => k.split(".").pop() + " " + fmtValue(hp[k]));
  if (params.length) add("hyper-parameters", params.join(" · "));
  const metrics = m.metrics || {};
  const shown = KEY_METRICS.filter((k) => k in metrics);
  const keys = shown.length ? shown : Object.keys(metrics);
  if (keys.length) add("metrics", keys.map((k) => k + " " + fmtValue(metrics[k])).join(" · "));
  const tuned = m.safety && m.safety.tuned;
  if (tuned) {
    add("safety (held-out answers)", tuned.warnings + " warnings in " + tuned.answers_checked +
      " answers, max risk " + tuned.max_risk_level + "/3");
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
