// Vega-Lite specs of a released answer, drawn in the page by vega-embed (vendor/charts.js).
// The same charts as the report's (api/charts.py): bars with their 95% interval, suppressed
// counts without a bar; user text (labels, names) goes into the data, never into a field
// name or an expression.

const BLUE = "#1f4e8c";
const ORANGE = "#b35806"; // the plan's curve (contrast 4.5:1 on white)
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

// The map: the boundaries of the län (or healthcare regions) from the vendored boundary
// file, each area coloured by its released count; a suppressed area (or one with no cell)
// grey, and every area labelled with its display ("<10" on the grey ones), so the
// suppressed ones do not rest on colour alone. The name, count and interval on hover, and
// as each area's description (its aria-label) for a screen reader.
const GREY = "#c4c4c4";
export function mapSpec(areas, t) {
  const values = areas.map((a) => ({ ...a, properties: { ...a.properties,
    aria: `${a.properties.name}: ${a.properties.display}${a.properties.interval ? ` (${a.properties.interval})` : ""}` } }));
  const labels = values.map((a) => a.properties);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config,
    title: { text: t.map_caption, subtitle: t.suppressed_note },
    description: t.map_caption,
    width: 340, height: 700,
    // SWEREF 99 TM's projection (transverse Mercator on 15° E), Sweden's own map grid
    projection: { type: "transverseMercator", rotate: [-15, 0] },
    layer: [
      // invalid: "show" keeps the areas without a released count (to draw them grey)
      { data: { values }, mark: { type: "geoshape", stroke: "#ffffff", strokeWidth: 0.8, invalid: "show" },
        encoding: {
          color: { condition: { test: "datum.properties.value === null", value: GREY },
                   field: "properties.value", type: "quantitative", title: t.persons,
                   scale: { scheme: "blues", domainMin: 0 }, legend: { format: "d" } },
          tooltip: [{ field: "properties.name", title: t.name },
                    { field: "properties.display", title: t.persons },
                    { field: "properties.interval", title: t.interval }],
          description: { field: "properties.aria" } } },
      // dark text in a white halo (workbench.css paints the stroke under the fill): legible
      // on every fill, and where a label runs over the coast
      { data: { values: labels },
        mark: { type: "text", fontSize: 11, fontWeight: "bold", fill: "#111111",
                stroke: "#ffffff", strokeWidth: 3, strokeJoin: "round", aria: false },
        encoding: { longitude: { field: "lon", type: "quantitative" },
                    latitude: { field: "lat", type: "quantitative" },
                    text: { field: "display" } } },
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

// The enrolment plan: the expected cumulative enrolment of all sites at each month's end
// (line) with its 90% interval (band), the target (dashed), and the time to reach it, its
// median (rule) and 90% interval (grey band) where the months shown reach it: the report's
// chart (api/charts.py plan_chart).
export function planSpec(plan, curve, t) {
  const x = { field: "date", type: "temporal", title: null, axis: { format: "%Y-%m" } };
  const last = curve[curve.length - 1].date;
  const [lo, hi] = plan.time_to_target.interval90;
  const median = plan.time_to_target.median;
  const layer = [
    { data: { values: curve }, mark: { type: "area", color: ORANGE, opacity: 0.25 },
      encoding: { x, y: { field: "low", type: "quantitative", title: t.plan_axis }, y2: { field: "high" } } },
    { data: { values: curve }, mark: { type: "line", color: ORANGE },
      encoding: { x, y: { field: "cumulative", type: "quantitative" },
                  tooltip: [{ field: "date", type: "temporal", format: "%Y-%m-%d" },
                            { field: "cumulative", title: t.plan_cumulative, format: ".0f" },
                            { field: "low", title: t.plan_interval90 }, { field: "high", title: t.plan_interval90 }] } },
    { data: { values: [{ target: plan.target }] }, mark: { type: "rule", color: "#1a1a1a", strokeDash: [4, 4] },
      encoding: { y: { field: "target", type: "quantitative" } } },
  ];
  if (lo && hi && hi <= last) {
    layer.unshift({ data: { values: [{ from: lo, to: hi }] }, mark: { type: "rect", color: GREY, opacity: 0.35 },
                    encoding: { x: { field: "from", type: "temporal" }, x2: { field: "to" } } });
  }
  if (median && median <= last) {
    layer.push({ data: { values: [{ median }] }, mark: { type: "rule", color: "#4a4a4a", strokeWidth: 2 },
                 encoding: { x: { field: "median", type: "temporal" } } });
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json", config, title: t.plan_chart,
    width: 560, height: 220, layer,
  };
}
