// Swagger UI at /docs, started from this file and not from a script in the page: the
// page's Content-Security-Policy (the workbench's) runs no inline script. Its options
// (the schema's URL, no validator badge) are the page's JSON.
const config = JSON.parse(document.getElementById("swagger-config").textContent);
window.ui = SwaggerUIBundle({
  ...config,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
