// Vega-Lite specs of a released answer, drawn in the page by vega-embed (vendor/charts.js).
// The same charts as the report's (api/charts.py): bars with their 95% interval, suppressed
// counts without a bar; user text (labels, names) goes into the data, never into a field
// name or an expression.

const BLUE = "#1f4e8c";
const FONT = "system-ui, DejaVu Sans, sans-serif";
const config = { font: FONT, view: { stroke: null }, axis: { labelFontSize: 12, titleFontSize: 12 } };

function bars(rows, title, xTitle, t) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config, title,
    width: 480, height: Math.max(60, 24 * rows.length),
    data: { values: rows },
    encoding: { y: { field: "label", type: "nominal", sort: { field: "order" }, title: null,
                     axis: { labelLimit: 300 } } },
    layer: [
      { mark: { type: "bar", color: BLUE },
        encoding: { x: { field: "value", type: "quantitative", title: xTitle },
                    tooltip: [{ field: "label", title: t.label }, { field: "shown", title: t.persons },
                              { field: "interval", title: t.interval }] } },
      { mark: { type: "rule", color: "black" },
        encoding: { x: { field: "low", type: "quantitative" }, x2: { field: "high" } } },
      { mark: { type: "text", align: "left", dx: 4, color: "#1a1a1a" },
        encoding: { x: { field: "end", type: "quantitative" }, text: { field: "shown" } } },
    ],
  };
}

export function funnelSpec(rows, t) {
  return bars(rows.map((r) => ({
    order: r.index, label: `${r.index}. ${r.label}`, value: r.count, low: r.lower, high: r.upper,
    shown: r.display, interval: r.interval, end: r.upper ?? r.count ?? 0,
  })), t.funnel, t.persons, t);
}

export function barSpec(table, t) {
  const rows = table.breakdown.map((c, i) => ({
    order: i, label: table.dims.map((d) => String(c[d + "_name"] ?? c[d])).join(" · "),
    value: c.suppressed ? null : c.count, low: c.lower, high: c.upper, shown: c.display,
    interval: c.lower == null ? "" : `${c.lower}–${c.upper}`,
    end: c.upper ?? c.count ?? 0,
  }));
  return bars(rows, `${t.breakdown}: ${table.dims.join(", ")}`, t.persons, t);
}

// The tile grid map: a tile per area, coloured by its released count; suppressed tiles grey
// with their display ("<10").
export function mapSpec(tiles, t) {
  const cols = Math.max(...tiles.map((d) => d.col)) + 1;
  const rows = Math.max(...tiles.map((d) => d.row)) + 1;
  const top = Math.max(0, ...tiles.map((d) => d.value ?? 0));
  const x = { field: "col", type: "ordinal", axis: null, scale: { domain: [...Array(cols).keys()] } };
  const y = { field: "row", type: "ordinal", axis: null, scale: { domain: [...Array(rows).keys()] } };
  const ink = { condition: { test: "datum.ink === '#ffffff'", value: "#ffffff" }, value: "#111111" };
  const tip = [{ field: "name", title: t.name }, { field: "display", title: t.persons },
               { field: "interval", title: t.interval }];
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config,
    title: { text: t.map_caption, subtitle: t.suppressed_note },
    width: 92 * cols, height: 62 * rows,
    // the text is white on the darker half of the colour scale, black elsewhere (contrast)
    data: { values: tiles.map((d) => ({ ...d, ink: d.value !== null && d.value > top / 2 ? "#ffffff" : "#111111",
      short: d.name.replace(/ län$/, "").replace(/sjukvårdsregionen|Sjukvårdsregion /, "").slice(0, 14) })) },
    layer: [
      // every tile grey first (a suppressed or empty area keeps it), then the released ones
      { mark: { type: "rect", stroke: "#ffffff", strokeWidth: 2, color: "#c4c4c4" },
        encoding: { x, y, tooltip: tip } },
      { transform: [{ filter: "datum.value !== null" }],
        mark: { type: "rect", stroke: "#ffffff", strokeWidth: 2 },
        encoding: { x, y, tooltip: tip,
          color: { field: "value", type: "quantitative", title: t.persons,
                   scale: { scheme: "blues", domainMin: 0 }, legend: { format: "d" } } } },
      { mark: { type: "text", baseline: "bottom", dy: -1, fontSize: 10 },
        encoding: { x, y, text: { field: "short" }, color: ink } },
      { mark: { type: "text", baseline: "top", dy: 3, fontSize: 12, fontWeight: "bold" },
        encoding: { x, y, text: { field: "display" }, color: ink } },
    ],
  };
}

// An age/sex pyramid: females to the left (negative), males to the right.
export function pyramidSpec(table, t) {
  const age = table.dims.find((d) => d !== "sex");
  const values = table.breakdown.map((c) => ({
    age: String(c[age + "_name"] ?? c[age]), order: Number(c[age]) || 0, sex: c.sex,
    sexName: c.sex === "female" ? t.female : t.male,
    value: c.suppressed ? 0 : (c.sex === "female" ? -1 : 1) * c.count, shown: c.display,
  }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config, title: t.pyramid,
    width: 480, height: Math.max(80, 14 * values.length),
    data: { values },
    mark: "bar",
    encoding: {
      y: { field: "age", type: "nominal", sort: { field: "order", order: "descending" }, title: null },
      x: { field: "value", type: "quantitative", title: t.persons, axis: { labelExpr: "abs(datum.value)" } },
      color: { field: "sexName", type: "nominal", title: null,
               scale: { range: ["#8a2d6b", BLUE] } },
      tooltip: [{ field: "sexName", title: t.name }, { field: "age" }, { field: "shown", title: t.persons }],
    },
  };
}

// The recruitment forecast: the released monthly series (points; a suppressed month has
// none), the forecast's mean (line) and its 50% and 90% prediction intervals (bands).
export function forecastSpec(total, t) {
  const series = total.series.filter((m) => m.count != null)
    .map((m) => ({ month: m.month, count: m.count }));
  const ahead = total.forecast ? total.forecast.forecast.map((m) => ({
    month: m.month, mean: m.mean, lo90: m.interval90[0], hi90: m.interval90[1],
    lo50: m.interval50[0], hi50: m.interval50[1] })) : [];
  const x = { field: "month", type: "temporal", title: null };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config, title: t.forecast,
    width: 560, height: 220,
    layer: [
      { data: { values: ahead }, mark: { type: "area", color: BLUE, opacity: 0.18 },
        encoding: { x, y: { field: "lo90", type: "quantitative", title: t.per_month }, y2: { field: "hi90" } } },
      { data: { values: ahead }, mark: { type: "area", color: BLUE, opacity: 0.3 },
        encoding: { x, y: { field: "lo50", type: "quantitative" }, y2: { field: "hi50" } } },
      { data: { values: ahead }, mark: { type: "line", color: BLUE },
        encoding: { x, y: { field: "mean", type: "quantitative" } } },
      { data: { values: series }, mark: { type: "point", filled: true, size: 18, color: "#1a1a1a" },
        encoding: { x, y: { field: "count", type: "quantitative" },
                    tooltip: [{ field: "month", type: "temporal", format: "%Y-%m" }, { field: "count", title: t.persons }] } },
    ],
  };
}
