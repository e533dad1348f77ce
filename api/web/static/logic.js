// The workbench's logic with no DOM and no network: the criteria of a cohort's text (the
// structured view edits the text, so the text stays the one source), the funnel's rows,
// the CSV export, the map's areas, the enrolment plan's sites and curve. workbench.js wires these to the page; tests/test_web.py
// runs them in the browser.

const OFF = "#off ";

// The statements of a cohort text: each `include` / `exclude` (a statement may continue
// over several lines inside parentheses), switched off when its lines start with "#off ".
export function criteria(text) {
  const lines = text.split("\n");
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const on = !lines[i].startsWith(OFF);
    const body = on ? lines[i] : lines[i].slice(OFF.length);
    const m = /^\s*(include|exclude)\b/.exec(body);
    if (!m) continue;
    let depth = 0, end = i;
    for (let j = i; j < lines.length; j++) {
      const line = (j === i || on) ? lines[j] : lines[j].replace(OFF, "");
      depth += parens(j === i ? body : line);
      end = j;
      if (depth <= 0) break;
    }
    const statement = lines.slice(i, end + 1)
      .map((l) => (on ? l : l.replace(OFF, ""))).join("\n");
    const label = /^\s*(?:include|exclude)\s+"((?:[^"\\]|\\.)*)"/.exec(statement);
    out.push({ kind: m[1], on, start: i, end, text: statement,
               label: label ? label[1] : statement.replace(/^\s*(include|exclude)\s*:?\s*/, "") });
    i = end;
  }
  return out;
}

function parens(line) {
  let d = 0, inString = false;
  for (let k = 0; k < line.length; k++) {
    const c = line[k];
    if (inString) { if (c === "\\") k++; else if (c === '"') inString = false; continue; }
    if (c === '"') inString = true;
    else if (c === "#") break;
    else if (c === "(") d++;
    else if (c === ")") d--;
  }
  return d;
}

// The text with criterion `n` switched on or off (its lines commented out with "#off ").
export function toggle(text, n, on) {
  const c = criteria(text)[n];
  if (!c || c.on === on) return text;
  const lines = text.split("\n");
  for (let i = c.start; i <= c.end; i++) {
    lines[i] = on ? lines[i].replace(OFF, "") : OFF + lines[i];
  }
  return lines.join("\n");
}

// The text with criterion `n` swapped with the one before (-1) or after (+1) it.
export function move(text, n, dir) {
  const cs = criteria(text);
  const a = cs[Math.min(n, n + dir)], b = cs[Math.max(n, n + dir)];
  if (!a || !b || a === b) return text;
  const lines = text.split("\n");
  const blockA = lines.slice(a.start, a.end + 1), blockB = lines.slice(b.start, b.end + 1);
  const between = lines.slice(a.end + 1, b.start);
  return [...lines.slice(0, a.start), ...blockB, ...between, ...blockA,
          ...lines.slice(b.end + 1)].join("\n");
}

// The funnel's rows: each step's released count as released, and what it removed (the
// difference of two released counts, so approximate; unknown when either is suppressed).
export function funnelRows(attrition) {
  return attrition.map((s, i) => {
    const prev = i > 0 ? attrition[i - 1] : null;
    const removed = prev && !prev.suppressed && !s.suppressed && prev.count != null && s.count != null
      ? prev.count - s.count : null;
    return { index: i, label: s.label, display: s.display, count: s.count,
             lower: s.lower, upper: s.upper, suppressed: s.suppressed,
             interval: s.suppressed || s.lower == null ? "" : `${s.lower}–${s.upper}`,
             removed: i === 0 ? "" : removed == null ? "?" : String(removed) };
  });
}

// The tables of an answer: `tables` when the API sent them, else its one breakdown.
export function tablesOf(answer) {
  if (answer.tables && answer.tables.length) return answer.tables;
  if (answer.dims && answer.dims.length) return [{ dims: answer.dims, level: 0, report: 0,
                                                   breakdown: answer.breakdown }];
  return [];
}

function csvCell(v) {
  let s = v == null ? "" : String(v);
  // a cell that a spreadsheet would run as a formula is quoted as text
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// The answer's counts as CSV: the attrition, then each table's cells, each row with the
// released count, whether it is suppressed, its display and its 95% interval.
export function csvOf(answer) {
  const rows = [["table", "step", "label", "dimensions", "count", "suppressed", "display",
                 "lower", "upper"]];
  answer.attrition.forEach((s, i) => rows.push(["attrition", i, s.label, "", s.count,
    s.suppressed, s.display, s.lower, s.upper]));
  tablesOf(answer).forEach((t, ti) => {
    for (const c of t.breakdown) {
      const dims = t.dims.map((d) => `${d}=${c[d + "_name"] ?? c[d]}`).join("; ");
      rows.push([`table ${ti + 1} (${t.dims.join(", ")})`, "", "", dims, c.count, c.suppressed,
                 c.display, c.lower, c.upper]);
    }
  });
  return rows.map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

// The map's areas: the vendored boundary file's features of the table's dimension (`region`:
// the 21 län, `sjukvardsregion`: the six healthcare regions), each with its released cell
// (or none: "–"). The names are the API's where it sent them, else the file's.
export function mapAreas(table, geo) {
  const dim = table.dims[0];
  const cells = new Map(table.breakdown.map((c) => [String(c[dim]), c]));
  return geo.features.filter((f) => f.properties.level === dim).map((f) => {
    const { code, label } = f.properties;
    const c = cells.get(code);
    return { type: "Feature", geometry: f.geometry, properties: {
      code, name: c ? c[dim + "_name"] ?? f.properties.name : f.properties.name,
      lon: label[0], lat: label[1],
      value: c && !c.suppressed ? c.count : null, display: c ? c.display : "–",
      suppressed: c ? c.suppressed : false,
      interval: c && !c.suppressed && c.lower != null ? `${c.lower}–${c.upper}` : "" } };
  });
}

// The codeset names a cohort text defines (completed after `@`).
export function codesets(text) {
  return [...text.matchAll(/^\s*codeset\s+([a-z_][a-z0-9_]*)/gm)].map((m) => m[1]);
}

// The table of sites an enrolment plan can use: the answer's table by hospital (as asked,
// not a roll-up), or none.
export function siteTable(answer) {
  return tablesOf(answer).find((t) => t.dims.length === 1 && t.dims[0] === "hospital" && !t.level)
    ?? null;
}

// The sites of a table by hospital to pick from, the largest released first (those below
// the threshold last, in the table's order); the first `n` released ones picked.
export function planSites(table, n) {
  const cells = table.breakdown.filter((c) => c.hospital != null)
    .map((c, i) => ({ code: String(c.hospital), name: String(c.hospital_name ?? c.hospital),
                      display: c.display, count: c.suppressed ? null : c.count, order: i }));
  cells.sort((a, b) => (b.count ?? -1) - (a.count ?? -1) || a.order - b.order);
  return cells.map((c, i) => ({ ...c, picked: c.count != null && i < n }));
}

// The day `m` calendar months after an ISO date (the month's last day when it is shorter),
// as the plan counts months (antal.privacy.plan.calendar_month).
export function calendarMonth(iso, m) {
  const [y, mo, d] = iso.split("-").map(Number);
  const first = new Date(Date.UTC(y, mo - 1 + m, 1));
  const last = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 0)).getUTCDate();
  first.setUTCDate(Math.min(d, last));
  return first.toISOString().slice(0, 10);
}

// A plan's expected cumulative enrolment at each month's end with its 90% interval, from
// 0 at the start: the points of its chart.
export function planCurve(plan) {
  return [{ date: plan.start, cumulative: 0, low: 0, high: 0 },
    ...plan.months.map((m) => ({ date: calendarMonth(plan.start, m.month), cumulative: m.cumulative,
                                 low: m.cumulative90[0], high: m.cumulative90[1] }))];
}
