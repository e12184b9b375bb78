// The dashboard: reads arrive by server-sent events; writes go to the admin API with the
// token from this tab's sessionStorage as a bearer header (never a URL, cookie or log).
"use strict";

(function () {
  const TOKEN_KEY = "switchyard.token";
  const SPAN_S = 3600;
  const VERSIONS = ["production", "staging"];
  const history = { production: [], staging: [] };
  let current = null;
  // For the browser tests: what was last drawn, and when (this page's clock).
  const probe = (window.__switchyard = { version: -1, renderedAt: 0, changedAt: 0, renders: 0 });

  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function fill(id, rows) {
    const node = $(id);
    node.replaceChildren(...rows);
  }

  const ago = (s) => (s === null || s === undefined ? "-" : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`);
  const pct = (v, digits = 1) => (v === null || v === undefined ? "-" : `${(100 * v).toFixed(digits)}%`);
  const ms = (s) => (s === null || s === undefined ? "-" : `${(1000 * s).toFixed(s < 0.01 ? 2 : 1)} ms`);
  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "-");
  const short = (sha) => (sha ? sha.slice(0, 12) : "unknown");

  // Messages: refusals and failures of writes, said on the page.
  function say(text, kind) {
    const node = $("message");
    node.textContent = text;
    node.className = `message ${kind || "error"}`;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function showLogin() {
    const has = !!token();
    $("login").classList.toggle("hidden", has);
    $("who").classList.toggle("hidden", !has);
  }

  async function write(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "omit", cache: "no-store" });
    } catch (err) {
      say(`${method} ${path} failed: the proxy did not answer (${err.message})`);
      return null;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (response.status === 401 || response.status === 403) {
      const why = data && data.message ? data.message : response.statusText;
      say(`Refused (${response.status}): ${why}${t ? "" : ". Log in with the admin token to make changes."}`, "refused");
      return null;
    }
    if (!response.ok) {
      say(`${method} ${path}: ${response.status} ${data && data.message ? data.message : response.statusText}`);
      return null;
    }
    say(`Done: ${method} ${path}`, "ok");
    return data === null ? {} : data;
  }

  function renderVersions(state) {
    const rows = state.versions.map((v) => {
      const chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      chart.id = `chart-${v.name}`;
      chart.classList.add("chart");
      const bars = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      bars.classList.add("bars");
      const points = history[v.name] || [];
      // The last hour once there is an hour; until then, since the first point (a minute at least).
      const first = points.length ? points[0].at : state.at;
      const span = Math.min(SPAN_S, Math.max(60, state.at - first));
      window.SyCharts.lineChart(
        chart,
        [
          { name: "p50", cls: "p50", points: points.filter((p) => p.n > 0).map((p) => [p.at, p.p50 === null ? null : 1000 * p.p50]) },
          { name: "p99", cls: "p99", points: points.filter((p) => p.n > 0).map((p) => [p.at, p.p99 === null ? null : 1000 * p.p99]) },
        ],
        { spanS: span, now: state.at, unit: " ms", format: (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1)) }
      );
      window.SyCharts.shareBars(bars, v.weight, v.share === null ? null : 100 * v.share);
      return h(
        "div",
        { class: `version ${v.name}`, id: `version-${v.name}` },
        h("h3", {}, v.name),
        h("p", {}, h("code", { class: "sha" }, short(v.sha)), v.age_s === null ? " no deploy recorded" : ` deployed ${ago(v.age_s)} ago`),
        h("p", { class: "weight" }, "weight set ", h("strong", { id: `weight-${v.name}` }, `${v.weight}%`), ", served ", h("strong", { id: `share-${v.name}` }, v.share === null ? "-" : `${Math.round(100 * v.share)}%`), h("span", { class: "muted", title: "95% interval" }, v.share_interval ? ` [${Math.round(100 * v.share_interval[0])}-${Math.round(100 * v.share_interval[1])}%]` : ""), ` (last minute, every proxy; ${v.backends} backend${v.backends === 1 ? "" : "s"})`),
        bars,
        h("p", { class: "rates" }, h("strong", { id: `rps-${v.name}` }, v.rps.toFixed(1)), " req/s, ", h("strong", { id: `err-${v.name}` }, pct(v.error_rate, 2)), " 5xx", h("span", { class: "muted" }, ` of ${v.answered}`)),
        h("p", { class: "muted" }, `upstream latency p50 / p99, the last hour, every proxy (a point per ${state.bucket_s} s)`),
        chart
      );
    });
    fill("versions", rows);
    const input = $("weight-input");
    if (document.activeElement !== input) input.value = String(state.weight);
  }

  function renderKill(state) {
    const a = state.alert;
    $("kill-state").replaceChildren(
      a
        ? h("span", {}, h("span", { class: "pill bad", id: "kill-pill" }, "ON"), ` staging gets no traffic: ${a.reason || "no reason given"} (by ${a.by}, ${when(a.at)})`)
        : h("span", {}, h("span", { class: "pill on", id: "kill-pill" }, "off"), " staging takes its weight")
    );
    $("kill-form").classList.toggle("hidden", !!a);
    $("kill-clear").classList.toggle("hidden", !a);
  }

  function ruleText(f) {
    const sw = f.on ? "on" : "off";
    if (f.kind === "percent") return `${sw}, ${f.percent}% of users`;
    if (f.kind === "variants") return `${sw}, variants ${Object.entries(f.variants || {}).map(([k, w]) => `${k}=${w}`).join(" ")}`;
    return sw;
  }

  function renderFlags(state) {
    fill(
      "flags",
      state.flags.map((f) =>
        h(
          "tr",
          { id: `flag-${f.name}` },
          h("td", {}, h("code", {}, f.name)),
          h("td", { class: f.on ? "on" : "off" }, ruleText(f)),
          h("td", {}, f.routes.length ? f.routes.join(", ") : "-"),
          h("td", {}, h("button", { type: "button", "data-flag": f.name, "data-on": f.on ? "1" : "0", onclick: toggleFlag }, f.on ? "Turn off" : "Turn on"))
        )
      )
    );
  }

  function renderPools(state) {
    const rows = [];
    for (const name of VERSIONS) {
      const backends = state.pools[name] || [];
      if (!backends.length) rows.push(h("tr", {}, h("td", {}, name), h("td", { colspan: 5, class: "muted" }, "no backends")));
      for (const b of backends) {
        const ejected = b.ejected_s !== null && b.ejected_s !== undefined;
        rows.push(
          h(
            "tr",
            {},
            h("td", {}, name),
            h("td", {}, h("code", {}, b.url)),
            h("td", { class: ejected ? "bad" : "on" }, ejected ? `ejected (${Math.max(0, Math.round(b.ejected_s))} s left)` : "serving"),
            h("td", {}, String(b.inflight)),
            h("td", {}, b.server || "-"),
            h("td", {}, b.release || short(b.sha))
          )
        );
      }
    }
    fill("pools", rows);
  }

  function ruleChip(name, r) {
    const phase = r.phase || "?";
    const value = typeof r.value === "number" ? ` ${r.value.toFixed(1)}%` : "";
    return h("span", { class: `chip ${phase}` }, `${name}: ${phase}${value}`);
  }

  function renderHosts(state) {
    fill(
      "servers",
      state.servers.length
        ? state.servers.map((s) => h("tr", {}, h("td", {}, s.id), h("td", {}, s.pool), h("td", { class: s.state === "active" ? "on" : s.state === "cleanup_failed" ? "bad" : "" }, s.state), h("td", {}, s.step || "-"), h("td", {}, s.address || s.url || "-"), h("td", {}, s.provider), h("td", { class: "bad" }, s.error || "")))
        : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "no managed servers"))]
    );
    fill(
      "hosts",
      state.hosts.length
        ? state.hosts.map((x) => h("tr", {}, h("td", {}, x.host), h("td", {}, x.role || "-"), h("td", {}, x.cpu_percent === null ? "-" : `${x.cpu_percent.toFixed(1)}%`), h("td", {}, x.mem_percent === null ? "-" : `${x.mem_percent.toFixed(1)}%`), h("td", {}, x.age_s === null ? "no live sample" : `${ago(x.age_s)} ago`), h("td", {}, Object.entries(x.rules).map(([n, r]) => ruleChip(n, r)))))
        : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "no monitored hosts"))]
    );
  }

  function renderDeploys(state) {
    fill(
      "deploys",
      state.deploys.length
        ? state.deploys.map((d) => h("tr", {}, h("td", {}, when(d.at)), h("td", {}, d.env), h("td", {}, d.action), h("td", {}, h("code", {}, short(d.sha))), h("td", { class: d.result === "succeeded" ? "on" : "bad", title: d.error || null }, d.result + (d.failed_host ? ` on ${d.failed_host}` : "")), h("td", {}, d.by), h("td", {}, `${d.seconds.toFixed(1)} s`)))
        : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "no deploys recorded"))]
    );
    const previews = state.previews;
    $("previews-block").classList.toggle("hidden", !previews);
    if (previews) {
      fill(
        "previews",
        previews.map((p) => {
          const url = typeof p.url === "string" && /^https?:\/\//.test(p.url) ? p.url : null;
          return h("li", {}, url ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, p.name || url) : p.name || "preview", p.sha ? h("code", {}, ` ${short(p.sha)}`) : null);
        })
      );
    }
  }

  function render(state) {
    current = state;
    renderVersions(state);
    renderKill(state);
    renderFlags(state);
    renderPools(state);
    renderHosts(state);
    renderDeploys(state);
    const s = state.state;
    $("statever").textContent = `state version ${s.version}${s.stale ? " (STALE: " + (s.error || "Redis unreachable") + ")" : ""}${state.slow_error ? "; " + state.slow_error : ""}${state.counts_error ? "; " + state.counts_error : ""}`;
    probe.renderedAt = Date.now();
    if (probe.version !== s.version) probe.changedAt = probe.renderedAt;
    probe.version = s.version;
    probe.renders += 1;
  }

  // The buckets read anew: each point replaces the one of its bucket (counts land late).
  function addTail(tail, now) {
    for (const [version, points] of Object.entries(tail || {})) {
      if (!points.length) continue;
      const byAt = new Map((history[version] || []).map((p) => [p.at, p]));
      for (const p of points) byAt.set(p.at, p);
      history[version] = [...byAt.values()].filter((p) => p.at >= now - SPAN_S).sort((a, b) => a.at - b.at);
    }
  }

  function connect() {
    const source = new EventSource("/dashboard/events");
    source.addEventListener("open", () => {
      $("conn").textContent = "live";
      $("conn").className = "pill on";
    });
    source.addEventListener("error", () => {
      $("conn").textContent = "reconnecting";
      $("conn").className = "pill off";
    });
    source.addEventListener("hello", (e) => {
      const state = JSON.parse(e.data);
      for (const v of Object.keys(history)) history[v] = [];
      for (const [v, points] of Object.entries(state.history || {})) history[v] = points.slice();
      render(state);
      refreshRollout(state);
    });
    source.addEventListener("state", (e) => {
      const state = JSON.parse(e.data);
      addTail(state.tail, state.at);
      render(state);
      window.SyRollout.onState(state);
    });
  }

  async function toggleFlag(event) {
    const button = event.currentTarget;
    const name = button.getAttribute("data-flag");
    await write("PUT", `/flags/${encodeURIComponent(name)}`, { on: button.getAttribute("data-on") !== "1" });
  }

  window.SyRollout.bind({ h, fill, write, say, pct, ms, $, current: () => current });
  const refreshRollout = window.SyRollout.refresh;

  function bindForms() {
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token").value.trim();
      $("token").value = "";
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      showLogin();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
    });
    $("weight-form").addEventListener("submit", (e) => {
      e.preventDefault();
      write("PUT", "/weight", { weight: Number($("weight-input").value) });
    });
    $("kill-form").addEventListener("submit", (e) => {
      e.preventDefault();
      write("PUT", "/alert", { reason: $("kill-reason").value.trim() || "set from the dashboard" });
    });
    $("kill-clear").addEventListener("click", () => write("DELETE", "/alert"));
  }

  bindForms();
  showLogin();
  connect();
  setInterval(() => refreshRollout(current), 5000);
})();
