// The workbench page: sign-in, the cohort editor with completion and inline errors, the
// criteria cards, quote and count, the answer's funnel, map and charts, the enrolment plan
// of its sites, exports, history and the catalog. Every number comes from the JSON API (/v1/...) with the bearer token; text
// from the server or the user is put in the page as text, never as markup.
import { createEditor, forceLinting } from "./vendor/editor.js";
import { embed } from "./vendor/charts.js";
import {
  codesets, criteria, csvOf, funnelRows, mapAreas, move, planCurve, planSites, siteTable,
  tablesOf, toggle,
} from "./logic.js";
import { barSpec, forecastSpec, funnelSpec, mapSpec, planSpec, pyramidSpec } from "./specs.js";

const PAGE = JSON.parse(document.getElementById("page-data").textContent);
const T = PAGE.strings;
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "antal.token";
const PROJECT_KEY = "antal.project";
const TEXT_KEY = "antal.texts"; // answer key -> the cohort text counted in this browser

const EXAMPLE = `cohort "Type 2 diabetes, 40-75"
index first diagnosis E11* between 2015-01-01 and 2023-12-31
include "Age 40-75": age 40..75
exclude "Type 1 diabetes": diagnosis E10*
report by region
`;

const state = { token: sessionStorage.getItem(TOKEN_KEY), project: null, answer: null,
                views: {}, text: "" };

// ---- the API --------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || { code: "http_error", message: `HTTP ${status}` };
    super(e.message);
    this.status = status; this.code = e.code; this.details = e.details;
  }
}

async function api(method, path, body, raw = false) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) {
    let parsed = null;
    try { parsed = await r.json(); } catch { /* not JSON */ }
    throw new ApiError(r.status, parsed);
  }
  return raw ? r : r.json();
}

function fmt(x) {
  return Number.isInteger(x) ? String(x) : String(Math.round(x * 1000) / 1000);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function download(name, type, data) {
  const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data], { type }));
  const a = el("a", { href: url, download: name });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- sign in, project, budget ----------------------------------------------------------

async function signIn(token) {
  state.token = token;
  const me = await api("GET", "/v1/me");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = `${T.signed_in_as} ${me.name || me.id}`;
  const select = $("project");
  select.replaceChildren(...me.projects.map((p) => el("option", { value: p }, p)));
  const saved = sessionStorage.getItem(PROJECT_KEY);
  if (saved && me.projects.includes(saved)) select.value = saved;
  state.project = select.value || null;
  $("signin").hidden = true; $("session").hidden = false; $("app").hidden = false;
  if (!state.project) $("budget").textContent = T.no_projects;
  await refreshBudget();
  if (!state.editor) startEditor();
}

async function refreshBudget() {
  if (!state.project) return;
  const b = await api("GET", `/v1/projects/${encodeURIComponent(state.project)}/budget`);
  $("budget").textContent = `${T.budget_left}: ε ${fmt(b.left)} ${T.of} ${fmt(b.total)}`;
  $("budget").dataset.left = b.left;
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  try { await signIn($("token").value.trim()); $("token").value = ""; }
  catch (e) { state.token = null; $("signin-error").textContent = e.message; }
});
$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY); location.reload();
});
$("project").addEventListener("change", async () => {
  state.project = $("project").value;
  sessionStorage.setItem(PROJECT_KEY, state.project);
  await refreshBudget();
  if (!$("view-history").hidden) await loadHistory();
});

// ---- views -------------------------------------------------------------------------------

for (const b of document.querySelectorAll(".tabs button")) {
  b.addEventListener("click", async () => {
    for (const o of document.querySelectorAll(".tabs button")) {
      o.setAttribute("aria-pressed", String(o === b));
      $(`view-${o.dataset.view}`).hidden = o !== b;
    }
    if (b.dataset.view === "history") await loadHistory();
    if (b.dataset.view === "catalog") await loadCatalog();
  });
}

// ---- the editor ------------------------------------------------------------------------

const searchCache = new Map();
async function search(q) {
  if (!searchCache.has(q)) {
    searchCache.set(q, api("GET", `/v1/catalog/search?q=${encodeURIComponent(q)}`).catch(() => []));
  }
  return searchCache.get(q);
}

async function complete(context) {
  const word = context.matchBefore(/[@A-Za-z_][A-Za-z0-9_.*]*/);
  if (!word || (word.from === word.to && !context.explicit)) return null;
  const text = word.text;
  if (text.startsWith("@")) {
    return { from: word.from + 1, options: codesets(context.state.doc.toString())
      .map((n) => ({ label: n, type: "variable", detail: "codeset" })) };
  }
  const options = PAGE.keywords.filter((k) => k.startsWith(text))
    .map((k) => ({ label: k, type: "keyword" }));
  if (text.length >= 3) {  // like the MII portal: search from 3 characters, 50 results
    const hits = await search(text.replace(/\*$/, ""));
    for (const h of hits.slice(0, 50)) {
      if (h.kind === "code") {
        options.push({ label: h.name, type: "constant", detail: h.code_system,
                       info: h.description + (h.availability != null ? ` (${T.availability}: ${h.availability})` : "") });
      } else if (h.kind === "variable") {
        options.push({ label: `${h.register_id}.${h.name}`, type: "property",
                       detail: h.code_system || "", info: h.description || "" });
      } else if (h.kind === "register") {
        options.push({ label: h.register_id, type: "namespace", info: h.description || "" });
      }
    }
  }
  return options.length ? { from: word.from, options, filter: false } : null;
}

async function lint(view) {
  const text = view.state.doc.toString();
  $("diagnostics").textContent = T.checking;
  let v;
  try { v = await api("POST", "/v1/cohorts/validate", { cohort: text }); }
  catch (e) { $("diagnostics").textContent = e.message; return []; }
  const doc = view.state.doc;
  const out = v.diagnostics.map((d) => {
    const line = doc.line(Math.min(Math.max(d.line, 1), doc.lines));
    const from = Math.min(line.from + Math.max(d.column - 1, 0), line.to);
    const word = /^[^\s,()]+/.exec(doc.sliceString(from, line.to));
    return { from, to: word ? from + word[0].length : Math.min(from + 1, line.to),
             severity: d.severity === "warning" ? "warning" : "error",
             message: d.message + (d.hint ? ` (${d.hint})` : "") };
  });
  const box = $("diagnostics");
  if (v.ok && !v.diagnostics.length) {
    box.replaceChildren(el("span", { class: "ok" }, T.valid));
  } else {
    box.replaceChildren(el("ul", {}, ...v.diagnostics.map((d) => el("li", { class: d.severity },
      `${T.line} ${d.line}, ${T.column} ${d.column}: ${d.message}${d.hint ? ` (${d.hint})` : ""}`))));
    if (v.ok) box.prepend(el("span", { class: "ok" }, T.valid));
  }
  return out;
}

function setText(text) {
  const v = state.editor;
  v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
}

function renderCards() {
  const text = state.editor.state.doc.toString();
  const cs = criteria(text);
  const list = $("cards");
  if (!cs.length) { list.replaceChildren(el("li", {}, T.no_criteria)); return; }
  list.replaceChildren(...cs.map((c, i) => {
    const id = `crit-${i}`;
    return el("li", { class: `${c.kind}${c.on ? "" : " off"}`, "data-index": i },
      el("input", { type: "checkbox", id, checked: c.on, onchange: (ev) => setText(toggle(state.editor.state.doc.toString(), i, ev.target.checked)) }),
      el("div", {}, el("span", { class: "kind" }, T[c.kind]), " ",
         el("label", { for: id }, `${T.criterion_on}: ${c.label}`), el("code", {}, c.text)),
      el("div", { class: "moves" },
        el("button", { type: "button", "aria-label": `${T.move_up}: ${c.label}`, disabled: i === 0,
                       onclick: () => setText(move(state.editor.state.doc.toString(), i, -1)) }, "↑"),
        el("button", { type: "button", "aria-label": `${T.move_down}: ${c.label}`, disabled: i === cs.length - 1,
                       onclick: () => setText(move(state.editor.state.doc.toString(), i, 1)) }, "↓")));
  }));
}

function startEditor() {
  let timer = null;
  state.editor = createEditor({
    parent: $("editor"), doc: localStorage.getItem("antal.draft") ?? EXAMPLE,
    keywords: PAGE.keywords, complete, lint, label: T.editor_label,
    onChange: (view) => {
      renderCards();  // the cards follow the text at once (they are a view of it)
      clearTimeout(timer);
      timer = setTimeout(() => localStorage.setItem("antal.draft", view.state.doc.toString()), 300);
    },
  });
  state.editor.contentDOM.setAttribute("aria-describedby", "editor-help");
  renderCards();
  forceLinting(state.editor);
}

$("upload").addEventListener("change", async (ev) => {
  const f = ev.target.files[0];
  if (f) setText(await f.text());
});
$("download-definition").addEventListener("click", () =>
  download("cohort.cohort", "text/plain;charset=utf-8", state.editor.state.doc.toString()));

// ---- quote, count, the answer --------------------------------------------------------

function projectPath(what) {
  return `/v1/projects/${encodeURIComponent(state.project)}/${what}`;
}

$("quote").addEventListener("click", async () => {
  $("count-error").textContent = "";
  try {
    const q = await api("POST", projectPath("quote"), { cohort: state.editor.state.doc.toString() });
    $("quote-out").textContent = q.stored_answer ? T.quote_free
      : !q.affordable ? T.quote_refused.replace("{eps}", fmt(q.epsilon)).replace("{left}", fmt(q.budget_left))
      : T.quote_cost.replace("{eps}", fmt(q.epsilon)).replace("{after}", fmt(q.budget_left_after));
  } catch (e) { $("count-error").textContent = `${T.error}: ${e.message}`; }
});

$("count").addEventListener("click", async () => {
  $("count-error").textContent = ""; $("quote-out").textContent = T.working;
  $("result").hidden = true;  // the answer shown is always the one of the text counted
  const text = state.editor.state.doc.toString();
  $("count").disabled = true;
  try {
    const answer = await api("POST", projectPath("count"), { cohort: text });
    const texts = JSON.parse(localStorage.getItem(TEXT_KEY) || "{}");
    texts[answer.receipt.answer_key] = text;
    localStorage.setItem(TEXT_KEY, JSON.stringify(texts));
    state.text = text;
    $("quote-out").textContent = "";
    await showAnswer(answer);
  } catch (e) {
    $("quote-out").textContent = "";
    $("count-error").textContent = e.code === "budget_exceeded"
      ? `${T.refused} ${e.message}` : `${T.error}: ${e.message}`;
    $("count-error").dataset.code = e.code || "";
  } finally {
    $("count").disabled = false;
    await refreshBudget().catch(() => {});
  }
});

$("forecast").addEventListener("click", async () => {
  $("count-error").textContent = ""; $("quote-out").textContent = T.working;
  $("forecast-result").hidden = true;
  try {
    const res = await api("POST", projectPath("forecast"),
      { cohort: state.editor.state.doc.toString(), months: 12 });
    $("quote-out").textContent = "";
    $("forecast-result").hidden = false;
    const total = res.total;
    $("forecast-notes").replaceChildren(
      ...[...res.notes, total.no_forecast, total.forecast && total.forecast.model].filter(Boolean)
        .map((n) => el("li", {}, n)),
      el("li", {}, `${T.charged}: ${fmt(res.answer.epsilon_charged)}`));
    await chart($("forecast-chart"), forecastSpec(total, T), "forecast");
  } catch (e) {
    $("quote-out").textContent = "";
    $("count-error").textContent = e.code === "budget_exceeded" ? `${T.refused} ${e.message}` : `${T.error}: ${e.message}`;
    $("count-error").dataset.code = e.code || "";
  } finally { await refreshBudget().catch(() => {}); }
});

// The boundary file (static/vendor/sweden.geojson, see its README), fetched once from antal.
let geo = null;
function boundaries() {
  geo ??= fetch(new URL("./vendor/sweden.geojson", import.meta.url)).then((r) => {
    if (!r.ok) throw new Error(`sweden.geojson: HTTP ${r.status}`);
    return r.json();
  });
  return geo;
}

async function chart(container, spec, name) {
  const res = await embed(container, spec, { actions: false, renderer: "svg" });
  state.views[name] = res.view;
  return res.view;
}

async function showAnswer(answer) {
  state.answer = answer; state.views = {};
  $("result").hidden = false;
  const parts = [];
  if (answer.stored_answer) parts.push(T.stored_answer);
  const eps = answer.epsilon_charged ?? answer.epsilon;
  if (eps !== undefined) parts.push(`${T.charged}: ${fmt(eps)}`);
  if (answer.budget_left !== undefined) parts.push(`${T.budget_left}: ε ${fmt(answer.budget_left)}`);
  $("result-summary").textContent = parts.join(" · ");

  const rows = funnelRows(answer.attrition);
  $("attrition").tBodies[0].replaceChildren(...rows.map((r) => el("tr", {},
    el("td", { class: "num" }, String(r.index)), el("td", {}, r.label),
    el("td", { class: `num${r.suppressed ? " suppressed" : ""}` }, r.display),
    el("td", { class: "num" }, r.interval), el("td", { class: "num" }, r.removed))));
  await chart($("funnel-chart"), funnelSpec(rows, T), "funnel");

  const box = $("breakdowns");
  box.replaceChildren();
  for (const [i, table] of tablesOf(answer).entries()) {
    const sect = el("section", { class: "breakdown", "aria-label": `${T.breakdown}: ${table.dims.join(", ")}` });
    box.append(sect);
    sect.append(el("h3", {}, `${T.breakdown}: ${table.dims.join(", ")}${table.level ? ` (roll-up ${table.level})` : ""}`));
    const holder = el("div", { class: "chart", id: `breakdown-chart-${i}` });
    sect.append(holder);
    const dims = table.dims;
    if (dims.length === 1 && (dims[0] === "region" || dims[0] === "sjukvardsregion")) {
      holder.classList.add("map");
      await chart(holder, mapSpec(mapAreas(table, await boundaries()), T), `map-${i}`);
    } else if (dims.length === 2 && dims.includes("sex") && dims.some((d) => d.startsWith("age"))) {
      await chart(holder, pyramidSpec(table, T), `pyramid-${i}`);
    } else {
      await chart(holder, barSpec(table, T), `bars-${i}`);
    }
    // a site table marks the sites not to read as exact or as ranked (privacy/sites.py)
    const marked = table.breakdown.some((c) => c.near_threshold || c.rank_uncertain);
    const care = (c) => [c.near_threshold ? T.mark_threshold.replace("{threshold}", answer.receipt?.privacy?.threshold ?? 10) : "",
                         c.rank_uncertain ? T.mark_rank : ""].filter(Boolean).join("; ");
    const head = el("tr", {}, ...dims.map((d) => el("th", { scope: "col" }, d)),
      el("th", { scope: "col" }, answer.unit === "episodes" ? T.episodes : T.persons),
      el("th", { scope: "col" }, T.interval),
      ...(marked ? [el("th", { scope: "col" }, T.read_with_care)] : []));
    const body = table.breakdown.map((c) => el("tr", {},
      ...dims.map((d) => el("td", {}, c[d] == null ? T.unknown : String(c[d + "_name"] ?? c[d]))),
      el("td", { class: `num${c.suppressed ? " suppressed" : ""}` }, c.display),
      el("td", { class: "num" }, c.lower == null ? "" : `${c.lower}–${c.upper}`),
      ...(marked ? [el("td", { class: "mark" }, care(c))] : [])));
    sect.append(el("table", { class: "cells" }, el("caption", {}, dims.join(", ")),
                   el("thead", {}, head), el("tbody", {}, ...body)));
  }
  if (answer.breakdown_note) box.append(el("p", { class: "help" }, answer.breakdown_note));
  showPlanForm(answer);

  const warnings = answer.warnings || [];
  $("warnings").replaceChildren(...(warnings.length ? [el("h3", {}, T.warnings),
    el("ul", {}, ...warnings.map((w) => el("li", {}, w.hint ? `${w.message} — ${w.hint}` : w.message)))] : []));
  const cur = answer.data_currency;
  $("currency").hidden = !cur;
  if (cur) {
    $("currency").querySelector("ul").replaceChildren(...cur.registers.map((r) =>
      el("li", {}, `${r.id}: ${r.extract.start ?? "?"} – ${r.extract.through ?? "?"}, ${T.complete_through} ${r.complete_through ?? "?"}${r.lag_note ? `. ${r.lag_note}` : ""}`)));
  }
  $("receipt").hidden = !answer.receipt;
  $("receipt").querySelector("pre").textContent = answer.receipt ? JSON.stringify(answer.receipt, null, 2) : "";
}

$("export-csv").addEventListener("click", () =>
  download("antal-counts.csv", "text/csv;charset=utf-8", csvOf(state.answer)));
$("export-svg").addEventListener("click", async () =>
  download("antal-attrition.svg", "image/svg+xml", await state.views.funnel.toSVG()));
$("export-png").addEventListener("click", async () => {
  // a data: URL, downloaded as it is (the page's policy lets it fetch nothing but its server)
  const a = el("a", { href: await state.views.funnel.toImageURL("png", 2), download: "antal-attrition.png" });
  document.body.append(a); a.click(); a.remove();
});
$("export-report").addEventListener("click", async () => {
  $("count-error").textContent = "";
  try {
    const r = await api("POST", projectPath("report"), { cohort: state.text || state.editor.state.doc.toString() }, true);
    download("antal-report.html", "text/html", await r.blob());
  } catch (e) { $("count-error").textContent = `${T.error}: ${e.message}`; }
  await refreshBudget().catch(() => {});
});

// ---- the enrolment plan of the answer's sites -------------------------------------------------

const PLAN_SITES = 5; // the sites picked to start with: the largest of the released table

// The plan's form, under an answer with a table by hospital of a text counted here: every
// site of the table to pick (the largest picked), each with an optional later start.
function showPlanForm(answer) {
  const table = siteTable(answer);
  $("plan").hidden = !table || !state.text;
  $("plan-result").hidden = true;
  $("plan-error").textContent = ""; $("plan-status").textContent = "";
  if (!table) return;
  $("plan-sites").tBodies[0].replaceChildren(...planSites(table, PLAN_SITES).map((s, i) => el("tr", {},
    el("td", {}, el("input", { type: "checkbox", id: `plan-site-${i}`, value: s.code, checked: s.picked }),
       " ", el("label", { for: `plan-site-${i}` }, s.name)),
    el("td", { class: `num${s.count == null ? " suppressed" : ""}` }, s.display),
    el("td", {}, el("input", { type: "date", "data-site": s.code, "aria-label": `${T.plan_site_start}: ${s.name}` })))));
}

// What the form asks: the picked sites (codes, in the list's order), their later starts,
// the target, the fractions and the dates left empty left out (the route's defaults).
function planBody() {
  const rows = [...$("plan-sites").tBodies[0].rows];
  const picked = rows.filter((r) => r.querySelector("input[type=checkbox]").checked);
  const starts = {};
  for (const r of picked) {
    const d = r.querySelector("input[type=date]");
    if (d.value) starts[d.dataset.site] = d.value;
  }
  const body = { cohort: state.text, target: Number($("plan-target").value),
                 sites: picked.map((r) => r.querySelector("input[type=checkbox]").value),
                 site_starts: starts, capture: Number($("plan-capture").value),
                 consent: Number($("plan-consent").value), screen_fail: Number($("plan-screen-fail").value) };
  if ($("plan-start").value) body.start = $("plan-start").value;
  if ($("plan-by").value) body.by = $("plan-by").value;
  return body;
}

$("plan-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("plan-error").textContent = ""; $("plan-result").hidden = true;
  const body = planBody();
  if (!body.sites.length) { $("plan-error").textContent = T.plan_no_sites; return; }
  $("plan-status").textContent = T.plan_working;
  $("plan-submit").disabled = true;
  try {
    await showPlan(await api("POST", projectPath("plan"), body));
  } catch (e) {
    $("plan-error").textContent = e.code === "budget_exceeded" ? `${T.refused} ${e.message}` : `${T.error}: ${e.message}`;
    $("plan-error").dataset.code = e.code || "";
  } finally {
    $("plan-status").textContent = "";
    $("plan-submit").disabled = false;
    await refreshBudget().catch(() => {});
  }
});

const fixed = (x, n = 1) => Number(x).toFixed(n);
const day = (d) => d ?? T.plan_never; // no date: beyond 100 years

async function showPlan(res) {
  const tt = res.time_to_target;
  const [lo, hi] = tt.interval90, [loM, hiM] = tt.interval90_months;
  const said = [T.plan_time.replace("{target}", res.target).replace("{median}", day(tt.median))
    .replace("{months}", fixed(tt.median_months)).replace("{start}", res.start)
    .replace("{low}", day(lo)).replace("{high}", day(hi))
    .replace("{low_months}", fixed(loM)).replace("{high_months}", fixed(hiM))];
  if (res.by && res.p_by != null) {
    said.push(T.plan_chance.replace("{target}", res.target).replace("{by}", res.by)
      .replace("{p}", String(Math.round(100 * res.p_by))));
  }
  $("plan-summary").textContent = said.join(" ");
  $("plan-rates").tBodies[0].replaceChildren(...res.sites.map((s) => el("tr", {},
    el("td", {}, s.name ?? s.site),
    el("td", { class: `num${s.released == null ? " suppressed" : ""}` }, s.display),
    el("td", { class: "num" }, fixed(s.eligible_per_month)),
    el("td", { class: "num" }, `${fixed(s.eligible_per_month90[0])}–${fixed(s.eligible_per_month90[1])}`),
    el("td", { class: "num" }, fixed(s.enrolled_per_month, 2)),
    el("td", {}, s.start))));
  const f = res.fractions;
  $("plan-assumptions").replaceChildren(
    el("li", {}, T.plan_assumed.replace("{capture}", fmt(f.capture)).replace("{consent}", fmt(f.consent))
      .replace("{screen_fail}", fmt(f.screen_fail)).replace("{enrolled}", fixed(100 * f.enrolled))),
    el("li", {}, T.plan_uncertainty.replace("{from}", res.window[0]).replace("{to}", res.window[1])
      .replace("{months}", fixed(res.exposure_months))),
    ...res.notes.map((n) => el("li", {}, n)),
    el("li", {}, `${T.charged}: ${fmt(res.answer.epsilon_charged)}`));
  $("plan-months").querySelector("tbody").replaceChildren(...res.months.map((m) => el("tr", {},
    el("td", {}, m.from), el("td", { class: "num" }, fixed(m.expected)),
    el("td", { class: "num" }, fixed(m.cumulative, 0)),
    el("td", { class: "num" }, `${m.cumulative90[0]}–${m.cumulative90[1]}`),
    el("td", { class: "num" }, `${Math.round(100 * m.p_reached)}%`))));
  $("plan-result").hidden = false;
  await chart($("plan-chart"), planSpec(res, planCurve(res), T), "plan");
}

// ---- history -------------------------------------------------------------------------------

async function loadHistory() {
  if (!state.project) return;
  const qs = await api("GET", projectPath("queries"));
  const texts = JSON.parse(localStorage.getItem(TEXT_KEY) || "{}");
  const body = $("history").tBodies[0];
  if (!qs.length) { body.replaceChildren(el("tr", {}, el("td", { colspan: 5 }, T.no_history))); return; }
  body.replaceChildren(...qs.map((q) => {
    const steps = q.answer.attrition;
    const text = texts[q.answer_key];
    const title = q.query.title || (text ? text.split("\n").find((l) => l.trim() && !l.startsWith("#")) : q.answer_key.slice(0, 12));
    return el("tr", {},
      el("td", {}, q.first_asked.replace("T", " ").slice(0, 19)),
      el("td", { class: "num" }, String(steps.length)),
      el("td", { class: "num" }, steps[steps.length - 1].display),
      el("td", {}, el("div", {}, title), el("pre", {}, text ?? T.no_text)),
      el("td", {},
        el("button", { type: "button", disabled: !text, onclick: () => {
          setText(text); document.querySelector('.tabs button[data-view="editor"]').click(); } }, T.open),
        " ",
        el("button", { type: "button", onclick: async () => {
          state.text = text || "";
          // a stored answer keeps counts only: the steps' labels are its text's, when known
          let labels = [];
          if (text) {
            labels = await api("POST", "/v1/cohorts/validate", { cohort: text })
              .then((v) => v.steps).catch(() => []);
          }
          const attrition = q.answer.attrition.map((st, i) => ({ ...st, label: labels[i] ?? `${T.step} ${i}` }));
          document.querySelector('.tabs button[data-view="editor"]').click();
          await showAnswer({ ...q.answer, attrition, receipt: q.receipt, tables: null }); } }, T.show)));
  }));
}

// ---- catalog -------------------------------------------------------------------------------

let catalogLoaded = false;
async function loadCatalog() {
  if (catalogLoaded) return;
  const lang = PAGE.lang;
  const [regs, systems, sites] = await Promise.all([api("GET", "/v1/catalog/registers"),
    api("GET", "/v1/catalog/code-systems"), api("GET", "/v1/catalog/sites")]);
  $("registers").tBodies[0].replaceChildren(...regs.filter((r) => !r.internal).map((r) => el("tr", {},
    el("td", {}, el("code", {}, r.id)), el("td", {}, r.title[lang] || r.title.en), el("td", {}, r.holder),
    el("td", {}, `${r.coverage.from_year ?? "?"}–${r.coverage.to_year ?? ""}`), el("td", {}, r.events.join(", ")))));
  $("code-systems").replaceChildren(...systems.map((s) => el("li", {},
    el("strong", {}, s.code_system), s.code_list ? ` (${s.code_list.codes} codes)` : "", ": ",
    s.periods.length
      ? s.periods.map((p) => `${p.variable} ${p.start ?? "…"}–${p.until ?? "…"}`).join("; ")
      : s.variables.join(", "))));
  $("sites").replaceChildren(...sites.map((s) => el("li", {}, `${s.name} (${s.code}, ${s.region})`)));
  catalogLoaded = true;
}

$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("search").value.trim();
  if (q.length < 3) { $("search-status").textContent = T.search_min; return; }
  const hits = (await search(q)).slice(0, 50);
  const avail = hits.some((h) => h.availability !== undefined);
  for (const th of document.querySelectorAll("#search-results .availability")) th.hidden = !avail;
  $("search-status").textContent = `${hits.length} ${T.results}`;
  $("search-results").hidden = false;
  $("search-results").tBodies[0].replaceChildren(...hits.map((h) => el("tr", {},
    el("td", {}, h.kind), el("td", {}, el("code", {}, h.kind === "variable" ? `${h.register_id}.${h.name}` : h.name)),
    el("td", {}, h.code_system || ""), el("td", {}, h.description || ""),
    ...(avail ? [el("td", { class: "num" }, h.availability == null ? "" : String(h.availability))] : []))));
});

// ---- start ---------------------------------------------------------------------------------

if (state.token) {
  signIn(state.token).catch(() => { sessionStorage.removeItem(TOKEN_KEY); state.token = null; });
}
window.antalWorkbench = { state, setText, showAnswer };
