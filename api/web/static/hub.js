// A federated hub's page: ask every node a cohort and watch the per-node status table fill
// in as the nodes answer. It long-polls GET /v1/hub/queries/{id}?wait= and keeps polling
// through transient errors (the hub restarting, a network blip, 429, 5xx) with a growing
// pause, as the MII feasibility portal's per-site view does; it stops on a final answer or
// an error that will not go away by itself (401, 403, 404).
const PAGE = JSON.parse(document.getElementById("page-data").textContent);
const T = PAGE.strings;
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "antal.hub.token";
let token = sessionStorage.getItem(TOKEN_KEY);
let polling = 0; // the query being polled: a newer one stops the older loop

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || { code: "http_error", message: `HTTP ${status}` };
    super(e.message); this.status = status; this.code = e.code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let parsed = null;
  try { parsed = await r.json(); } catch { /* not JSON */ }
  if (!r.ok && r.status !== 206) throw new ApiError(r.status, parsed);
  return parsed;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

export function transient(e) {
  // a fetch that failed (no answer at all), rate limits and server errors pass
  return !(e instanceof ApiError) || e.status === 429 || e.status >= 500;
}

function show(view) {
  $("status").hidden = false;
  $("status-title").textContent = view.title;
  $("status-state").textContent = view.complete ? T.complete
    : T.partial.replace("{missing}", view.missing.join(", "));
  $("node-table").tBodies[0].replaceChildren(...view.nodes.map((n) => el("tr", { "data-node": n.node },
    el("td", {}, n.node), el("td", { class: "node-status" }, n.status),
    el("td", { class: "num" }, n.display ?? ""),
    el("td", { class: "num" }, n.lower == null ? "" : `${n.lower}–${n.upper}`),
    el("td", {}, n.finished ?? ""), el("td", {}, n.error ? `${n.error.code}: ${n.error.message}` : ""))));
  const total = view.total;
  $("status-total").textContent = total
    ? `${T.total}: ${total.display ?? total.count ?? ""}${total.lower != null ? ` (${total.lower}–${total.upper})` : ""}`
    : "";
  // why the total is withheld or leaves out nodes that answered (per-node secrecy)
  $("status-note").textContent = [view.total_note, view.per_node_note].filter(Boolean).join(" ");
}

async function poll(qid) {
  const me = ++polling;
  let pause = 500;
  while (me === polling) {
    try {
      const view = await api("GET", `/v1/hub/queries/${encodeURIComponent(qid)}?wait=5`);
      if (me !== polling) return;
      $("status-retry").textContent = "";
      pause = 500;
      show(view);
      if (view.complete) { await loadLists(); return; }
    } catch (e) {
      if (!transient(e)) { $("status-retry").textContent = `${T.error}: ${e.message}`; return; }
      $("status-retry").textContent = T.retrying.replace("{reason}", e.message);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 5000);
    }
  }
}

async function loadLists() {
  const [qs, nodes] = await Promise.all([api("GET", "/v1/hub/queries"), api("GET", "/v1/hub/nodes")]);
  $("hub-queries").tBodies[0].replaceChildren(...qs.map((q) => el("tr", {},
    el("td", {}, q.created ?? ""), el("td", {}, q.project), el("td", {}, q.title),
    el("td", {}, q.complete ? T.complete : T.partial.replace("{missing}", q.missing.join(", "))),
    el("td", {}, el("button", { type: "button", onclick: () => poll(q.id) }, `${T.open_query}: ${q.title}`)))));
  $("hub-nodes").tBodies[0].replaceChildren(...nodes.map((n) => el("tr", {},
    el("td", {}, n.name), el("td", {}, (n.holds ?? []).join(", ")), el("td", {}, n.last_seen == null ? "" : new Date(n.last_seen * 1000).toISOString().slice(0, 19).replace("T", " ")))));
}

async function signIn(t) {
  token = t;
  await loadLists();
  sessionStorage.setItem(TOKEN_KEY, t);
  $("signin").hidden = true; $("app").hidden = false; $("session").hidden = false;
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("signin-error").textContent = "";
  try { await signIn($("token").value.trim()); $("token").value = ""; }
  catch (e) { token = null; $("signin-error").textContent = e.message; }
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
$("ask-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("ask-error").textContent = "";
  try {
    const view = await api("POST", "/v1/hub/queries",
      { project: $("hub-project").value, cohort: $("hub-cohort").value, wait: 0 });
    show(view);
    poll(view.id);
  } catch (e) { $("ask-error").textContent = `${T.error}: ${e.message}`; }
});
if (token) signIn(token).catch(() => { sessionStorage.removeItem(TOKEN_KEY); token = null; });
window.antalHub = { poll };
