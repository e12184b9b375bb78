// The rollout section, from GET /rollout: {"rollout": <record or null>, "leader": ...}
// (proxy/rollout/model.py's Rollout.to_json). Hidden while the record is null. Each step,
// the current one marked, and every verdict with what it saw (values, limit, samples, p).
"use strict";

(function () {
  let ui = null;
  let busy = false;
  let seenVersion = null;
  // Which buttons apply in which status (proxy/rollout/machine.py's command); the API
  // still decides, and a 409 is said on the page.
  const ALLOWED = {
    pause: ["running"],
    resume: ["paused", "held"],
    abort: ["running", "paused", "held", "promoting"],
    promote: ["running", "paused", "held"],
  };
  const PILL = { running: "on", done: "on", promoting: "on", paused: "off", held: "off", aborted: "bad" };

  function metricRow(m) {
    const { h, pct, ms } = ui;
    const show = m.metric === "errors" ? (v) => pct(v, 2) : ms;
    const p = m.p_value === null || m.p_value === undefined ? "-" : Number(m.p_value).toPrecision(3);
    return h(
      "tr",
      { class: String(m.outcome || "").toLowerCase(), "data-metric": m.metric },
      h("td", {}, m.metric),
      h("td", {}, String(m.outcome || "")),
      h("td", { class: "canary" }, `${show(m.canary)} of ${m.canary_n ?? "-"}`),
      h("td", { class: "baseline" }, `${show(m.baseline)} of ${m.baseline_n ?? "-"}`),
      h("td", { class: "limit" }, show(m.limit)),
      h("td", { class: "p-value", title: m.test || "" }, p),
      h("td", {}, m.reason || "")
    );
  }

  function verdictBlock(j) {
    const { h } = ui;
    const metrics = (j.verdict && j.verdict.metrics) || [];
    const outcome = String(j.outcome || "");
    const seen = j.end > j.start ? `, ${Math.round(j.end - j.start)} s of traffic` : "";
    return h(
      "div",
      { class: `verdict ${outcome.toLowerCase()}`, "data-step": j.step },
      h("p", {}, h("strong", {}, `step ${j.step + 1} at ${j.weight}%: ${outcome}`), ` ${new Date(j.at * 1000).toLocaleTimeString()}${seen}`),
      // The table is the explanation; the judge's own sentence only when it has no metrics.
      metrics.length
        ? h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["metric", "outcome", "canary", "production", "limit", "p-value", "reason"].map((t) => h("th", {}, t)))),
            h("tbody", {}, metrics.map(metricRow))
          )
        : h("p", {}, j.explain || "")
    );
  }

  function stepClass(r, i) {
    if (r.status === "done" || i < r.step) return "done";
    return i === r.step ? "current" : "";
  }

  function render(r, leader) {
    const { h, fill, $ } = ui;
    const status = $("rollout-status");
    status.textContent = r.status;
    status.className = `pill ${PILL[r.status] || ""}`;
    const plan = r.plan || {};
    const steps = plan.steps || [];
    fill("rollout-steps", steps.map((w, i) => h("li", { class: stepClass(r, i) }, `${w}%`)));
    $("rollout-about").textContent =
      `${r.id} of ${String(r.release || "unknown").slice(0, 12)}, by ${r.by}: ${r.target}% to staging ` +
      `(before: ${r.weight_before}%), every ${plan.step_s} s, promote: ${plan.promote}; ` +
      `leader ${leader || "none (no proxy leads)"}`;
    $("rollout-reason").textContent = r.reason || "";
    for (const button of document.querySelectorAll("[data-rollout]")) {
      button.disabled = !(ALLOWED[button.getAttribute("data-rollout")] || []).includes(r.status);
    }
    fill("rollout-verdicts", (r.history || []).slice().reverse().map(verdictBlock));
  }

  async function refresh(state) {
    if (!ui || busy) return;
    if (!state || !state.rollout_api) {
      ui.$("rollout-section").classList.add("hidden");
      return;
    }
    busy = true;
    try {
      const response = await fetch("/rollout", { headers: { Accept: "application/json" }, credentials: "omit", cache: "no-store" });
      const body = response.status === 200 ? await response.json() : null;
      const record = body && body.rollout;
      ui.$("rollout-section").classList.toggle("hidden", !record);
      if (record) render(record, body.leader);
    } catch (_) {
      ui.$("rollout-section").classList.add("hidden");
    } finally {
      busy = false;
    }
  }

  // Every rollout step moves the weight, which bumps the state's version: read the
  // record then, not only on the slow timer.
  function onState(state) {
    const version = state && state.state ? state.state.version : null;
    if (version !== seenVersion) {
      seenVersion = version;
      refresh(state);
    }
  }

  function bind(helpers) {
    ui = helpers;
    for (const button of document.querySelectorAll("[data-rollout]")) {
      button.addEventListener("click", async () => {
        await ui.write("POST", `/rollout/${button.getAttribute("data-rollout")}`);
        refresh(ui.current());
      });
    }
  }

  window.SyRollout = { bind, refresh, onState };
})();
