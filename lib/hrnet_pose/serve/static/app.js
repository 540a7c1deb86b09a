// hrnet_pose webcam page: the viewer's camera -> JPEG frames over a WebSocket -> tracked poses drawn on an overlay.
// No external scripts (works offline). The page's own measurements are in window.poseStats (read by the tests and
// the serve benchmark): frames sent / drawn / with persons, FPS of drawn frames, capture-to-drawn latency.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const apiKey = params.get("api_key") || "";
  const authHeaders = apiKey ? { "Authorization": "Bearer " + apiKey } : {};
  const $ = (id) => document.getElementById(id);
  const HEADER_BYTES = 12; // uint32 frame id + float64 capture ms, little-endian
  const MAX_IN_FLIGHT = Number(params.get("inflight") || 2);

  const stats = window.poseStats = {
    framesSent: 0, framesDrawn: 0, framesWithPersons: 0, posesDrawn: 0, dropped: 0, errors: [],
    fps: 0, latencyMeanMs: 0, latencyRecentMs: 0, latencies: [], lastPersons: 0, trackIds: [], running: false,
  };
  let skeleton = [], ws = null, stream = null, inFlight = new Map(), nextId = 1, drawTimes = [];
  let kptThr = 0.3, capture = document.createElement("canvas");

  function colour(trackId) { return `hsl(${((trackId < 0 ? 0 : trackId) * 67) % 360}, 90%, 55%)`; }

  function drawPersons(ctx, persons, sx, sy, thr) {
    let drawn = 0;
    for (const p of persons) {
      const c = colour(p.track_id === undefined ? 0 : p.track_id);
      const k = p.keypoints;
      ctx.strokeStyle = c; ctx.fillStyle = c; ctx.lineWidth = Math.max(2, ctx.canvas.width / 320);
      for (const [a, b] of skeleton) {
        if (k[a][2] < thr || k[b][2] < thr) continue;
        ctx.beginPath(); ctx.moveTo(k[a][0] * sx, k[a][1] * sy); ctx.lineTo(k[b][0] * sx, k[b][1] * sy); ctx.stroke();
      }
      for (const [x, y, s] of k) {
        if (s < thr) continue;
        ctx.beginPath(); ctx.arc(x * sx, y * sy, ctx.lineWidth * 1.5, 0, 2 * Math.PI); ctx.fill(); drawn++;
      }
      if (p.track_id !== undefined) {
        ctx.font = `${Math.round(ctx.canvas.width / 40)}px sans-serif`;
        ctx.fillText(`#${p.track_id}`, p.bbox[0] * sx, Math.max(12, p.bbox[1] * sy - 4));
      }
    }
    return drawn;
  }

  window.overlayPixels = function () { // non-transparent pixels on the overlay: what the viewer sees drawn
    const o = $("overlay");
    if (!o.width || !o.height) return 0;
    const data = o.getContext("2d").getImageData(0, 0, o.width, o.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
  };

  function showStats() {
    $("fps").textContent = stats.fps.toFixed(1);
    $("latency").textContent = stats.latencyRecentMs.toFixed(0);
    $("persons").textContent = String(stats.lastPersons);
    $("drawn").textContent = String(stats.framesDrawn);
    $("dropped").textContent = String(stats.dropped);
  }

  function onPose(msg) {
    const sent = inFlight.get(msg.frame);
    inFlight.delete(msg.frame);
    const video = $("video"), overlay = $("overlay");
    if (overlay.width !== video.videoWidth) { overlay.width = video.videoWidth; overlay.height = video.videoHeight; }
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    const poses = drawPersons(ctx, msg.persons, overlay.width / msg.width, overlay.height / msg.height, kptThr);
    const now = performance.now();
    stats.framesDrawn++; stats.posesDrawn += poses; stats.lastPersons = msg.persons.length;
    stats.dropped = msg.dropped;
    stats.trackIds = msg.persons.map((p) => p.track_id);
    if (msg.persons.length) stats.framesWithPersons++;
    if (sent !== undefined) {
      const latency = now - sent;
      stats.latencies.push(latency);
      stats.latencyMeanMs = stats.latencies.reduce((a, b) => a + b, 0) / stats.latencies.length;
      const recent = stats.latencies.slice(-30);
      stats.latencyRecentMs = recent.reduce((a, b) => a + b, 0) / recent.length;
    }
    drawTimes.push(now);
    while (drawTimes.length && now - drawTimes[0] > 1000) drawTimes.shift();
    stats.fps = drawTimes.length > 1 ? (drawTimes.length - 1) * 1000 / (now - drawTimes[0]) : 0;
    showStats();
    pump();
  }

  function onMessage(event) {
    const msg = JSON.parse(event.data);
    if (msg.type === "pose") onPose(msg);
    else if (msg.type === "dropped") { inFlight.delete(msg.frame); stats.dropped = msg.dropped; pump(); }
    else if (msg.type === "error") { stats.errors.push(msg.message); if (msg.frame !== undefined) inFlight.delete(msg.frame); $("status").textContent = msg.message; pump(); }
  }

  let sending = false, freshFrame = true; // a camera frame not sent yet (without requestVideoFrameCallback: always)
  function sendWidth() { // the page's choice of JPEG width: the selector, or ?width= in the address
    const w = Number(params.get("width") || $("send-width").value);
    return w > 0 ? w : 640;
  }
  function pump() { // send the current video frame when fewer than MAX_IN_FLIGHT frames are on their way
    const video = $("video");
    if (sending || !freshFrame || !ws || ws.readyState !== WebSocket.OPEN || inFlight.size >= MAX_IN_FLIGHT ||
        !video.videoWidth) return;
    sending = true;
    if (video.requestVideoFrameCallback) freshFrame = false; // each camera frame is sent at most once
    const width = Math.min(sendWidth(), video.videoWidth);
    capture.width = width; capture.height = Math.round(video.videoHeight * width / video.videoWidth);
    capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
    const t = performance.now(), id = nextId++;
    inFlight.set(id, t);
    capture.toBlob(async (blob) => {
      if (!blob) { inFlight.delete(id); sending = false; stats.errors.push("could not encode a frame"); return; }
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      const msg = new Uint8Array(HEADER_BYTES + jpeg.length);
      const view = new DataView(msg.buffer);
      view.setUint32(0, id, true); view.setFloat64(4, t, true); msg.set(jpeg, HEADER_BYTES);
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(msg); stats.framesSent++; } else inFlight.delete(id);
      sending = false;
      pump();
    }, "image/jpeg", 0.8);
  }

  function onVideoFrame() {
    freshFrame = true;
    pump();
    const video = $("video");
    if (stats.running && video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
  }

  async function start() {
    $("status").textContent = "starting camera...";
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
    } catch (err) { $("status").textContent = "camera: " + err; stats.errors.push(String(err)); return; }
    const video = $("video");
    video.srcObject = stream;
    await video.play();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/v1/stream${apiKey ? "?api_key=" + encodeURIComponent(apiKey) : ""}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = onMessage;
    ws.onclose = (e) => { $("status").textContent = `stream closed (${e.code} ${e.reason || ""})`; stats.running = false; };
    ws.onopen = () => {
      stats.running = true; $("status").textContent = "streaming"; $("start").disabled = true; $("stop").disabled = false;
      if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
      else setInterval(pump, 10);
      pump();
    };
  }

  function stop() {
    stats.running = false;
    if (ws) ws.close();
    ws = null;
    if (stream) stream.getTracks().forEach((t) => t.stop());
    inFlight.clear();
    $("start").disabled = false; $("stop").disabled = true; $("status").textContent = "stopped";
  }

  async function sendFile() {
    const file = $("file").files[0];
    if (!file) { $("upload-status").textContent = "choose an image first"; return; }
    const form = new FormData();
    form.append("image", file);
    form.append("kpt_thr", String(kptThr));
    $("upload-status").textContent = "sending...";
    const response = await fetch("/v1/pose", { method: "POST", body: form, headers: authHeaders });
    const body = await response.json();
    $("upload-json").textContent = JSON.stringify(body, null, 1);
    if (!response.ok) { $("upload-status").textContent = `${response.status}: ${body.error.message}`; return; }
    const bitmap = await createImageBitmap(file, { imageOrientation: "none" });
    const canvas = $("upload-canvas");
    canvas.width = bitmap.width; canvas.height = bitmap.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    drawPersons(ctx, body.persons, 1, 1, kptThr);
    $("upload-status").textContent = `${body.persons.length} persons, ${body.timings_ms.server_total.toFixed(0)} ms in the server`;
    window.lastUpload = body;
  }

  function showTab(name) {
    for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.panel === name);
    for (const p of document.querySelectorAll(".panel")) p.classList.toggle("hidden", p.id !== "panel-" + name);
  }

  async function loadModel() {
    const response = await fetch("/v1/models", { headers: authHeaders });
    if (!response.ok) { $("model").textContent = `model info: HTTP ${response.status}`; return false; }
    const model = (await response.json()).models[0];
    skeleton = model.keypoint_set.skeleton;
    $("model").textContent = `${model.name} (${model.backend}, ${model.input_size.width}x${model.input_size.height}, ${model.keypoint_set.name})`;
    return true;
  }

  for (const b of document.querySelectorAll(".tab")) b.onclick = () => showTab(b.dataset.panel);
  $("start").onclick = start; $("stop").onclick = stop; $("send-file").onclick = sendFile;
  $("kpt-thr").onchange = () => { kptThr = Number($("kpt-thr").value); };
  window.poseReady = loadModel().then((ok) => { if (ok && params.get("autostart") === "1") return start(); });
})();
