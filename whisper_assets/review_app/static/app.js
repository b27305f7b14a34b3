// Review page: transcripts are written with textContent or value only, so markup in them shows as text.
"use strict";
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
// Shared mode: the access token became an HttpOnly session cookie when the page loaded; the browser sends it.
const state = { entry: null, original: "", peaks: [], opened: 0, reviewTimes: [], session: 0 };

async function api(method, url, body) {
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
  const response = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw Object.assign(new Error(data?.detail || response.statusText), { status: response.status, data });
  return data;
}

function say(text) { $("message").textContent = text; }

function words(text) { return text.trim().split(/\s+/).filter(Boolean); }

// Word-level edit script (Levenshtein) between the original and the edited transcript.
function wordDiff(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  const ops = [];
  let i = a.length, j = b.length;
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && d[i][j] === d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)) {
      if (a[i - 1] === b[j - 1]) ops.unshift(["same", a[i - 1]]);
      else ops.unshift(["ins", b[j - 1]], ["del", a[i - 1]]);
      i--; j--;
    } else if (i > 0 && d[i][j] === d[i - 1][j] + 1) { ops.unshift(["del", a[i - 1]]); i--; }
    else { ops.unshift(["ins", b[j - 1]]); j--; }
  }
  return { ops, errors: d[a.length][b.length] };
}

function showDiff() {
  const text = $("editor").value;
  const { ops, errors } = wordDiff(words(state.original), words(text));
  const box = $("diff");
  box.replaceChildren(...ops.map(([kind, word]) => {
    const node = document.createElement(kind === "same" ? "span" : kind);
    node.textContent = word + " ";
    return node;
  }));
  const reference = Math.max(1, words(state.original).length);
  $("diff-wer").textContent = `WER ${Math.round((100 * errors) / reference)}%`;
  const count = words(text).length;
  $("counts").textContent = `${text.length} characters, ${count} words`;
  const duration = state.entry?.duration || 0;
  const rate = duration ? text.length / duration : 0;
  let problem = "";
  if (!text.trim()) problem = "the transcript is empty";
  else if (duration && rate > 25) problem = `${rate.toFixed(1)} characters per second is implausibly fast`;
  $("validation").textContent = problem || "looks plausible";
  $("validation").className = problem ? "bad" : "";
  return !problem;
}

function drawWaveform() {
  const canvas = $("waveform"), ctx = canvas.getContext("2d"), audio = $("audio");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#5a67d8";
  state.peaks.forEach(([low, high], i) => {
    const x = (i / state.peaks.length) * width;
    ctx.fillRect(x, height / 2 - high * height / 2, Math.max(1, width / state.peaks.length), (high - low) * height / 2 || 1);
  });
  if (audio.duration) {
    ctx.fillStyle = "#e53e3e";
    ctx.fillRect((audio.currentTime / audio.duration) * width, 0, 2, height);
  }
  $("clock").textContent = `${audio.currentTime.toFixed(1)} / ${(audio.duration || 0).toFixed(1)} s`;
}

async function load(id) {
  try {
    const entry = await api("GET", `/api/entries/${id}?order=${$("order").value}`);
    state.entry = entry; state.original = entry.transcript; state.opened = Date.now();
    $("entry-id").textContent = entry.id;
    $("entry-time").textContent = entry.timestamp;
    $("entry-duration").textContent = entry.duration ? `${entry.duration.toFixed(2)} s` : "no audio";
    $("entry-status").textContent = entry.is_reviewed ? "reviewed" : "not reviewed";
    const lv = entry.levels;
    $("levels").textContent = lv
      ? `RMS ${lv.rms_dbfs} dBFS · peak ${lv.peak_dbfs} dBFS · clipped ${(lv.clipped_share * 100).toFixed(2)}% · SNR ≈ ${lv.snr_db ?? "–"} dB`
      : `audio problem: ${entry.audio_error}`;
    $("levels").className = lv && (lv.clipped_share > 0.001 || lv.peak_dbfs > -0.5) ? "bad" : "";
    const priority = entry.priority;  // what the review order knows: the model's transcript and the score
    $("priority").hidden = !priority;
    if (priority) {
      $("priority-model").textContent = priority.model;
      $("priority-score").textContent = priority.score.toFixed(2);
      $("priority-reasons").textContent = priority.reasons.length ? `: ${priority.reasons.join(", ")}` : "";
      $("priority-text").textContent = priority.hypothesis;
    }
    $("editor").value = entry.transcript;
    $("jump").value = entry.id;
    $("review").disabled = Boolean(entry.audio_error);  // nothing to approve when the audio cannot be played
    $("save-next").disabled = Boolean(entry.audio_error);
    history.replaceState(null, "", `?entry=${entry.id}`);
    showDiff();
    $("audio").src = `/api/entries/${entry.id}/audio`;
    $("play").textContent = "▶︎ Play";
    $("audio").playbackRate = Number($("speed").value);
    state.peaks = entry.duration ? (await api("GET", `/api/entries/${entry.id}/peaks?buckets=900`)).peaks : [];
    drawWaveform();
    say("");
  } catch (error) { say(error.message); }
}

async function firstEntry() {
  const params = new URLSearchParams({ page_size: "1" });
  if ($("filter").value) params.set("reviewed", $("filter").value);
  if ($("search").value) params.set("q", $("search").value);
  params.set("sort", $("order").value);
  const page = await api("GET", `/api/entries?${params}`);
  if (page.items.length) await load(page.items[0].id); else say("no entries match");
}

async function save(extra = {}) {
  if (!state.entry || !showDiff()) { say("not saved: " + $("validation").textContent); return false; }
  try {
    const updated = await api("PUT", `/api/entries/${state.entry.id}`,
      { version: state.entry.version, transcript: $("editor").value, ...extra });
    state.entry = { ...state.entry, ...updated };  // keeps duration, levels and the neighbours' ids
    state.original = state.entry.transcript;
    state.reviewTimes.push((Date.now() - state.opened) / 1000); state.session++;
    say("saved"); showDiff(); refreshStats();
    return true;
  } catch (error) {
    if (error.status === 409) {
      say("someone else changed this entry; their text is loaded now");
      state.entry = { ...state.entry, ...error.data.current }; state.original = state.entry.transcript; $("editor").value = state.original; showDiff();
    } else say(error.message);
    return false;
  }
}

async function go(direction) {
  const target = state.entry?.[direction];
  if (target) await load(target); else say(`no ${direction.replace("_", " ")} entry`);
}

async function refreshStats() {
  const s = await api("GET", "/api/stats");
  $("progress-bar").style.width = `${s.total ? (100 * s.reviewed) / s.total : 0}%`;
  const average = state.reviewTimes.length ? state.reviewTimes.reduce((a, b) => a + b) / state.reviewTimes.length : 0;
  $("progress-text").textContent = `${s.reviewed}/${s.total} reviewed · ${state.session} this session · ${average.toFixed(0)} s per entry`;
  $("data-status").textContent = `${s.reviewed_not_trained} reviewed entries not yet trained on`;
  const data = await api("GET", "/api/train/data");
  const sizes = data.splits, total = sizes ? sizes.train + sizes.validation + sizes.test : 0;
  $("validation-split").textContent = total
    ? `${Math.round((100 * sizes.validation) / total)}% (${sizes.validation} of ${total} items; ratios are set in the settings file)`
    : "not known yet (Dagster has no split manifests)";
}

async function refreshTraining() {
  try {
    const status = await api("GET", "/api/train/status");
    if (!status.run_id) return;
    const elapsed = status.start_time ? ((status.end_time || Date.now() / 1000) - status.start_time) : 0;
    const logs = await api("GET", "/api/train/logs");
    // ETA from the last "train step X/Y" line the training asset logs, at the pace so far.
    const progress = logs.map((e) => /train step (\d+)\/(\d+)/.exec(e.message)).filter(Boolean).pop();
    const eta = progress && status.status === "STARTED" && Number(progress[1]) > 0
      ? `, about ${Math.round((elapsed * (progress[2] - progress[1])) / progress[1])} s left (step ${progress[1]}/${progress[2]})` : "";
    $("train-status").textContent = `run ${status.run_id.slice(0, 8)}: ${status.status}${elapsed ? `, ${elapsed.toFixed(0)} s` : ""}${eta}`;
    $("train-logs").textContent = logs.slice(-40).map((e) => e.message).join("\n");
  } catch (error) { $("train-status").textContent = error.message; }
}

$("prev").onclick = () => go("previous");
$("next").onclick = () => go("next");
$("next-unreviewed").onclick = () => go("next_unreviewed");
$("go").onclick = () => load(Number($("jump").value));
$("filter").onchange = firstEntry;
$("search").onchange = firstEntry;
$("order").onchange = firstEntry;
$("editor").oninput = showDiff;
$("undo").onclick = () => { $("editor").focus(); document.execCommand("undo"); showDiff(); };
$("redo").onclick = () => { $("editor").focus(); document.execCommand("redo"); showDiff(); };
$("save").onclick = () => save();
$("save-next").onclick = async () => { if (await save({ is_reviewed: true })) await go("next"); };
$("review").onclick = () => save({ is_reviewed: true });
$("delete").onclick = async () => {
  if (!state.entry || !confirm(`Delete entry ${state.entry.id}? It can be restored from the trash.`)) return;
  const next = state.entry.next || state.entry.previous;
  await api("DELETE", `/api/entries/${state.entry.id}`);
  say("deleted (restorable)"); refreshStats(); if (next) load(next);
};
$("play").onclick = () => { const a = $("audio"); a.paused ? a.play() : a.pause(); };
$("stop").onclick = () => { const a = $("audio"); a.pause(); a.currentTime = 0; drawWaveform(); };
$("speed").oninput = () => { $("audio").playbackRate = Number($("speed").value); $("speed-value").textContent = `${$("speed").value}×`; };
$("waveform").onclick = (event) => {
  const a = $("audio"), box = event.target.getBoundingClientRect();
  if (a.duration) { a.currentTime = ((event.clientX - box.left) / box.width) * a.duration; drawWaveform(); }
};
$("audio").ontimeupdate = drawWaveform;
$("audio").onplay = () => { $("play").textContent = "❚❚ Pause"; (function tick() { drawWaveform(); if (!$("audio").paused) requestAnimationFrame(tick); })(); };
$("audio").onpause = () => { $("play").textContent = "▶︎ Play"; };
$("train").onclick = async () => {
  $("train").disabled = true;
  try {
    const run = await api("POST", "/api/train", {
      base_model: $("base-model").value, learning_rate: Number($("learning-rate").value),
      batch_size: Number($("batch-size").value), max_epochs: Number($("max-epochs").value) });
    $("train-status").textContent = run.already_running ? `already running: ${run.run_id}` : `started ${run.run_id}`;
  } catch (error) { $("train-status").textContent = error.message; }
  finally { setTimeout(() => { $("train").disabled = false; }, 3000); }
};

document.addEventListener("keydown", (event) => {
  const typing = event.target === $("editor") || event.target.tagName === "INPUT";
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key === "Enter") { event.preventDefault(); $("save-next").click(); }
  else if (ctrl && event.key.toLowerCase() === "s") { event.preventDefault(); save(); }
  else if (ctrl && event.key.toLowerCase() === "r") { event.preventDefault(); $("review").click(); }
  else if (ctrl && event.key.toLowerCase() === "d") { event.preventDefault(); $("delete").click(); }
  else if (!typing && event.key === " ") { event.preventDefault(); $("play").click(); }
  else if (!typing && event.key === "ArrowLeft") go("previous");
  else if (!typing && event.key === "ArrowRight") go("next");
});

(async () => {
  await refreshStats().catch((error) => say(error.message));  // the entry still loads if stats fail
  const wanted = new URLSearchParams(location.search).get("entry");
  if (wanted) await load(Number(wanted)); else await firstEntry();
  setInterval(refreshTraining, 5000);
})();
