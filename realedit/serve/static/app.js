// realedit serve: the page. Plain JS against the HTTP API (no build step, no CDN).
"use strict";

const $ = (id) => document.getElementById(id);
// Exposed for the browser test: the session and the slider -> preview latencies (ms).
const app = window.realedit = {
  session: null, attrs: [], config: {}, latencies: [],
  inputs: 0,        // slider moves so far
  marks: [],        // [{n, t}] moves not yet visible in the preview
  inflight: false, pending: false, afterUrl: null, pollTimer: null, picked: 0,
};

function showError(msg) {
  const e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

async function api(path, opts) {
  let res;
  try {
    res = await fetch(path, opts);
  } catch (err) {
    throw new Error("the server did not answer (" + err.message + ")");
  }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return res;
}

// ------------------------------------------------------------------ upload
async function upload(file) {
  showError("");
  if (!file) return;
  const max = app.config.max_upload_bytes;
  if (max && file.size > max) {
    showError(`This file is ${(file.size / 2 ** 20).toFixed(1)} MB; the server takes at most ${(max / 2 ** 20).toFixed(0)} MB.`);
    return;
  }
  if (app.session) {  // the previous photo is no longer needed on the server
    fetch(`/api/sessions/${app.session.id}`, { method: "DELETE" }).catch(() => {});
    app.session = null;
  }
  clearInterval(app.pollTimer);
  $("faces").hidden = $("editor").hidden = true;
  progress("Uploading and looking for faces…", null);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const s = await (await api("/api/sessions", { method: "POST", body: form })).json();
    app.session = s;
    showFaces(s);
  } catch (err) {
    $("progress").hidden = true;
    showError(err.message);
  }
}

function progress(text, fraction) {
  $("progress").hidden = false;
  $("status").textContent = text;
  const bar = $("bar");
  if (fraction === null || fraction === undefined) bar.removeAttribute("value");
  else bar.value = fraction;
}

// ------------------------------------------------------------------ faces
function showFaces(s) {
  const view = $("faces-view");
  view.querySelectorAll(".box").forEach((b) => b.remove());
  $("photo").src = `/api/sessions/${s.id}/image?size=preview`;
  const addBox = (box, cls, label, title) => {
    const d = document.createElement("div");
    d.className = "box " + cls;
    d.style.left = (100 * box[0] / s.width) + "%";
    d.style.top = (100 * box[1] / s.height) + "%";
    d.style.width = (100 * (box[2] - box[0]) / s.width) + "%";
    d.style.height = (100 * (box[3] - box[1]) / s.height) + "%";
    if (label) { const t = document.createElement("span"); t.textContent = label; d.appendChild(t); }
    if (title) d.title = title;
    view.appendChild(d);
    return d;
  };
  s.skipped.forEach((k) => addBox(k.box, "skipped", "", k.reason));
  const buttons = $("face-buttons");
  buttons.innerHTML = "";
  const choices = s.faces.map((f) => ({ value: f.index, label: `face ${f.index + 1}`, box: f.box }));
  if (s.faces.length > 1) choices.push({ value: "all", label: `all ${s.faces.length} faces` });
  choices.forEach((c) => {
    const b = document.createElement("button");
    b.textContent = c.label;
    b.dataset.value = c.value;
    b.onclick = () => pick(c.value);
    buttons.appendChild(b);
    if (c.box) addBox(c.box, "face", String(c.value + 1)).onclick = () => pick(c.value);
  });
  pick(0);
  $("start").disabled = false;
  $("progress").hidden = true;
  $("faces").hidden = false;
  if (s.faces.length === 1) startInversion();  // nothing to choose
}

function pick(value) {
  app.picked = value;
  document.querySelectorAll("#face-buttons button").forEach((b) =>
    b.classList.toggle("selected", b.dataset.value === String(value)));
  document.querySelectorAll("#faces-view .box.face").forEach((b, i) =>
    b.classList.toggle("picked", value === "all" || value === i));
  $("start").textContent = value === "all" ? "Edit all faces" : `Edit face ${value + 1}`;
}

async function startInversion() {
  showError("");
  $("start").disabled = true;
  try {
    const s = await (await api(`/api/sessions/${app.session.id}/invert`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ faces: app.picked }),
    })).json();
    track(s);
    app.pollTimer = setInterval(poll, 250);
  } catch (err) {
    $("start").disabled = false;
    showError(err.message);
  }
}

async function poll() {
  if (!app.session) return;
  try {
    track(await (await api(`/api/sessions/${app.session.id}`)).json());
  } catch (err) {
    clearInterval(app.pollTimer);
    showError(err.message);
  }
}

function track(s) {
  app.session = s;
  if (s.state === "queued") {
    const ahead = s.ahead;
    progress(`Waiting in the queue: position ${s.position}` +
      (ahead ? ` (${ahead} photo${ahead > 1 ? "s" : ""} ahead of yours)` : ""), null);
  } else if (s.state === "inverting") {
    const p = s.progress;
    progress(p.total ? `Inverting: step ${p.step} of ${p.total}` : "Inverting…",
      p.total ? p.step / p.total : null);
  } else if (s.state === "ready") {
    clearInterval(app.pollTimer);
    progress("Ready: move the sliders.", 1);
    showEditor();
  } else if (s.state === "failed") {
    clearInterval(app.pollTimer);
    $("progress").hidden = true;
    $("start").disabled = false;
    showError(s.error);
  }
}

// ------------------------------------------------------------------ editor
function buildSliders() {
  const box = $("sliders");
  box.innerHTML = "";
  // SeFa components have no name a person knows: folded away, each with its note.
  let unnamed = null;
  app.attrs.forEach((a) => {
    const row = document.createElement("div");
    row.className = "slider";
    row.title = a.note || "";
    row.innerHTML = `<label for="s-${a.name}">${a.name}</label>
      <input id="s-${a.name}" type="range" min="${a.min}" max="${a.max}" step="${a.step}" value="0" data-attr="${a.name}">
      <output id="o-${a.name}">0.0</output>
      <label class="keep" title="hold ${a.name} fixed while editing the others"><input type="checkbox" id="k-${a.name}" data-keep="${a.name}"> keep</label>
      <div class="note">${a.note || ""}</div>`;
    if (a.group === "unnamed") {
      if (!unnamed) {
        unnamed = document.createElement("details");
        unnamed.id = "unnamed";
        unnamed.innerHTML = "<summary>Unnamed directions (SeFa components: found without labels, effect not measured)</summary>";
        box.appendChild(unnamed);
      }
      unnamed.appendChild(row);
    } else {
      box.appendChild(row);
    }
  });
  box.querySelectorAll("input[type=range]").forEach((el) => el.addEventListener("input", () => {
    $("o-" + el.dataset.attr).textContent = (+el.value).toFixed(1);
    moved();
  }));
  box.querySelectorAll("input[type=checkbox]").forEach((el) => el.addEventListener("change", () => {
    const slider = $("s-" + el.dataset.keep);
    slider.disabled = el.checked;  // a kept attribute is not edited
    if (el.checked) { slider.value = 0; $("o-" + el.dataset.keep).textContent = "0.0"; }
    moved();
  }));
}

function query() {
  const q = new URLSearchParams();
  document.querySelectorAll("#sliders input[type=range]").forEach((el) => {
    if (+el.value !== 0) q.append("edit", `${el.dataset.attr}=${el.value}`);
  });
  document.querySelectorAll("#sliders input[type=checkbox]").forEach((el) => {
    if (el.checked) q.append("keep", el.dataset.keep);
  });
  return q;
}

function showEditor() {
  const id = app.session.id;
  $("faces").hidden = true;
  $("before").src = `/api/sessions/${id}/image?size=preview`;
  $("editor").hidden = false;
  render();
}

function moved() {
  app.marks.push({ n: ++app.inputs, t: performance.now() });
  render();
}

// One request at a time, always for the newest slider state: a fast drag never queues up
// stale renders, and the preview catches up as soon as the server answers.
async function render() {
  if (app.inflight) { app.pending = true; return; }
  app.inflight = true;
  app.pending = false;
  const upto = app.inputs;
  const q = query();
  q.set("size", "preview");
  try {
    const blob = await (await api(`/api/sessions/${app.session.id}/image?${q}`)).blob();
    const url = URL.createObjectURL(blob);
    const img = $("after");
    img.src = url;
    await img.decode();
    if (app.afterUrl) URL.revokeObjectURL(app.afterUrl);
    app.afterUrl = url;
    const now = performance.now();
    app.marks = app.marks.filter((m) => {
      if (m.n > upto) return true;
      app.latencies.push(now - m.t);
      return false;
    });
    $("render-info").textContent = `preview ${app.latencies.length ? Math.round(app.latencies[app.latencies.length - 1]) + " ms" : ""}`;
    showError("");
  } catch (err) {
    app.marks = app.marks.filter((m) => m.n > upto);
    showError(err.message);
  } finally {
    app.inflight = false;
    if (app.pending) render();
  }
}

async function download() {
  showError("");
  const btn = $("download");
  btn.disabled = true;
  const q = query();
  q.set("size", "full");
  try {
    const res = await api(`/api/sessions/${app.session.id}/image?${q}`);
    const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = name ? name[1] : "edited";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    showError(err.message);
  } finally {
    btn.disabled = false;
  }
}

function reset() {
  document.querySelectorAll("#sliders input[type=range]").forEach((el) => {
    el.value = 0; el.disabled = false; $("o-" + el.dataset.attr).textContent = "0.0";
  });
  document.querySelectorAll("#sliders input[type=checkbox]").forEach((el) => { el.checked = false; });
  moved();
}

// ------------------------------------------------------------------ wiring
async function init() {
  try {
    app.config = await (await api("/api/page-config")).json();
    app.attrs = (await (await api("/api/attributes")).json()).attributes;
  } catch (err) {
    showError(err.message);
    return;
  }
  $("model").textContent = "model: " + app.config.model;
  $("limits").textContent = `JPEG, PNG, WebP, TIFF, BMP or GIF; up to ${(app.config.max_upload_bytes / 2 ** 20).toFixed(0)} MB and ${(app.config.max_pixels / 1e6).toFixed(0)} megapixels.`;
  if (app.config.warning) { $("warning").textContent = app.config.warning; $("warning").hidden = false; }
  buildSliders();
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $("file").click(); });
  $("file").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
  $("start").onclick = startInversion;
  $("reset").onclick = reset;
  $("download").onclick = download;
  document.querySelectorAll("input[name=view]").forEach((el) => el.addEventListener("change", () => {
    $("viewer").className = el.value;
  }));
  $("wipe-pos").addEventListener("input", (e) => $("viewer").style.setProperty("--wipe", e.target.value + "%"));
}

init();
