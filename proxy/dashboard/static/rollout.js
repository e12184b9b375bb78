// The rollout section: shown while GET /rollout answers 200, hidden on 404. Each step,
// the current one marked, and every verdict with what it saw (values, limit, samples, p).
"use strict";

(function () {
  let ui = null;
  let busy = false;

  function stepsOf(r) {
    return (r.plan && r.plan.steps) || r.steps || [];
  }

  function metricRow(m) {
    const { h, pct, ms } = ui;
    const show = m.metric === "errors" ? (v) => pct(v, 2) : ms;
    return h(
      "tr",
      { class: String(m.outcome || "").toLowerCase() },
      h("td", {}, m.metric),
      h("td", {}, String(m.outcome || "")),
      h("td", {}, `${show(m.canary)} of ${m.canary_n ?? "-"}`),
      h("td", {}, `${show(m.baseline)} of ${m.baseline_n ?? "-"}`),
      h("td", {}, show(m.limit)),
      h("td", {}, m.p_value === null || m.p_value === undefined ? "-" : Number(m.p_value).toPrecision(3)),
      h("td", {}, m.reason || "")
    );
  }

  function verdictBlock(j) {
    const { h } = ui;
    const metrics = (j.verdict && j.verdict.metrics) || j.metrics || [];
    return h(
      "div",
      { class: "verdict" },
      h("p", {}, h("strong", {}, `step ${j.step + 1} at ${j.weight}%: ${j.outcome}`), j.explain ? ` ${j.explain}` : ""),
      metrics.length
        ? h(
            "table",
            {},
            h("thead", {}, h("tr", {}, ["metric", "outcome", "canary", "production", "limit", "p-value", "reason"].map((t) => h("th", {}, t)))),
            h("tbody", {}, metrics.map(metricRow))
          )
        : null
    );
  }

  function render(r) {
    const { h, fill, $ } = ui;
    $("rollout-status").textContent = r.status || "";
    const steps = stepsOf(r);
    fill(
      "rollout-steps",
      steps.map((w, i) => h("li", { class: i < r.step ? "done" : i === r.step ? "current" : "" }, `${w}%`))
    );
    const judged = (r.history || r.verdicts || []).slice().reverse();
    fill("rollout-verdicts", [r.reason ? h("p", {}, r.reason) : null, ...judged.map(verdictBlock)].filter(Boolean));
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
      const show = response.status === 200;
      ui.$("rollout-section").classList.toggle("hidden", !show);
      if (show) {
        const body = await response.json();
        render(body.rollout || body);
      }
    } catch (_) {
      ui.$("rollout-section").classList.add("hidden");
    } finally {
      busy = false;
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

  window.SyRollout = { bind, refresh };
})();
