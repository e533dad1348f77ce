// Vega-Lite in the page: vega-embed with vega and vega-lite, bundled once by build.mjs into
// ../static/vendor/charts.js (the workbench draws the specs; the report draws the same kind
// of charts server-side with Altair and vl-convert).
export { default as embed } from "vega-embed";
