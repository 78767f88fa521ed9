/* tunewise portal: small progressive enhancements. Every page works without this file. */
"use strict";
(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  /* Live job page: the server's event stream (GET /api/jobs/{id}/stream) updates status, progress,
     losses and events; new steps redraw the loss chart (drawn on the server) at most every 2 s. */
  function liveJob(section) {
    const id = section.dataset.job;
    if (section.dataset.final === "true" || !window.EventSource) return;
    const $ = (sel) => document.getElementById(sel);
    const seen = new Set([...document.querySelectorAll("#events li")].map((li) => li.dataset.id));
    let chartTimer = null, lastStatus = null;
    const stream = new EventSource("/api/jobs/" + encodeURIComponent(id) + "/stream");
    const redraw = () => {
      chartTimer = null;
      fetch("/jobs/" + encodeURIComponent(id) + "/curves.svg", {credentials: "same-origin"})
        .then((r) => (r.ok ? r.text() : null)).then((svg) => { if (svg) $("curves").innerHTML = svg; });
    };
    stream.addEventListener("status", (e) => {
      const s = JSON.parse(e.data);
      if (lastStatus !== null && s.status !== lastStatus) { location.reload(); return; }
      lastStatus = s.status;
      const badge = $("job-status").querySelector(".badge");
      badge.textContent = s.status.replace("_", " "); badge.className = "badge " + s.status;
      if (s.total_steps) { $("job-progress").max = s.total_steps; }
    });
    stream.addEventListener("metrics", (e) => {
      const m = JSON.parse(e.data).data || {};
      if (m.step != null) {
        $("job-progress").value = m.step;
        $("job-step").textContent = m.step + " of " + $("job-progress").max;
      }
      if (m.train_loss != null) $("job-train-loss").textContent = Number(m.train_loss).toPrecision(4);
      if (m.valid_loss != null) $("job-val-loss").textContent = Number(m.valid_loss).toPrecision(4);
      if (!chartTimer) chartTimer = setTimeout(redraw, 2000);
    });
    stream.addEventListener("message", (e) => {
      const ev = JSON.parse(e.data);
      if (seen.has(ev.id)) return;
      seen.add(ev.id);
      const li = document.createElement("li");
      li.dataset.id = ev.id;
      li.textContent = new Date(ev.created_at * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC " + ev.message;
      $("events").prepend(li);
    });
    stream.addEventListener("done", () => { stream.close(); setTimeout(() => location.reload(), 500); });
  }

  /* Playground: each model's answer streams from /v1/chat/completions (the same OpenAI route any
     client uses, signed in with the session cookie and the CSRF token); thumbs go to /v1/feedback. */
  function playground(form) {
    form.addEventListener("submit", (event) => {
      if (!window.ReadableStream) return;  // the server renders the answers instead
      event.preventDefault();
      const prompt = form.querySelector("#prompt").value;
      const params = {max_tokens: Number(form.querySelector("#max_tokens").value) || 64,
                      temperature: Number(form.querySelector("#temperature").value)};
      document.querySelectorAll("[data-column]").forEach((column) => {
        const model = column.querySelector("select").value;
        if (model) ask(column, model, prompt, params);
      });
    });
  }

  async function ask(column, model, prompt, params) {
    const out = column.querySelector(".answer"), served = column.querySelector(".served"),
          thumbs = column.querySelector(".thumbs");
    out.textContent = ""; served.textContent = "asking " + model + "…"; thumbs.hidden = true;
    let responseId = null;
    try {
      const response = await fetch("/v1/chat/completions", {method: "POST", credentials: "same-origin",
        headers: {"content-type": "application/json", "x-csrf-token": csrf()},
        body: JSON.stringify({model: model, stream: true, messages: [{role: "user", content: prompt}], ...params})});
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        served.textContent = ((body.error || {}).message) || ("HTTP " + response.status); return;
      }
      served.textContent = "served by " + response.headers.get("x-tunewise-model") + " (version " +
        response.headers.get("x-tunewise-model-version") + ")";
      const reader = response.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        const lines = buffer.split("\n"); buffer = lines.pop();
        for (const line of lines) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const chunk = JSON.parse(line.slice(6));
          responseId = chunk.id || responseId;
          const delta = ((chunk.choices || [])[0] || {}).delta || {};
          if (delta.content) out.textContent += delta.content;
        }
      }
    } catch (err) { served.textContent = "the answer broke off: " + err; return; }
    if (responseId) { thumbs.hidden = false; thumbs.dataset.response = responseId; }
  }

  function feedback(button) {
    button.addEventListener("click", async (event) => {
      const box = button.closest(".thumbs");
      if (!box.dataset.response) return;
      event.preventDefault();
      const r = await fetch("/v1/feedback", {method: "POST", credentials: "same-origin",
        headers: {"content-type": "application/json", "x-csrf-token": csrf()},
        body: JSON.stringify({response_id: box.dataset.response, thumbs: button.value})});
      box.querySelector(".thanks").textContent = r.ok ? "Thanks: recorded " + button.value : "Not recorded";
    });
  }

  /* The new-job form is a GET form: leave empty fields out of its URL, so the link stays short and
     every empty field keeps meaning "the default". */
  function shortQuery(form) {
    form.addEventListener("submit", () => {
      form.querySelectorAll("input, select").forEach((field) => { if (field.name && !field.value) field.disabled = true; });
      setTimeout(() => form.querySelectorAll(":disabled").forEach((field) => { field.disabled = false; }), 0);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const jobForm = document.getElementById("job-form");
    if (jobForm) shortQuery(jobForm);
    const live = document.getElementById("live");
    if (live) liveJob(live);
    const play = document.getElementById("playground");
    if (play) playground(play);
    document.querySelectorAll(".thumbs button").forEach(feedback);
  });
})();
