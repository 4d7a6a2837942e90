// Runs one scenario against the gateway with the browser's own fetch (and so its own CORS checks), then writes
// a JSON summary into #result and sets document.title to "done". Only outcomes are written, never the token.
"use strict";

function headersOf(response) {
  return {
    limit: response.headers.get("X-RateLimit-Limit"),
    remaining: response.headers.get("X-RateLimit-Remaining"),
    retryAfter: response.headers.get("Retry-After"),
    // Sent by the gateway but neither CORS-safelisted nor exposed: a page must read null.
    vary: response.headers.get("Vary"),
  };
}

// `token`: null sends no Authorization header (a simple request: no preflight); undefined uses window.TOKEN.
async function attempt(method, path, body, token) {
  const bearer = token === undefined ? window.TOKEN : token;
  const init = { method: method, headers: bearer === null ? {} : { Authorization: "Bearer " + bearer } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch(window.GATEWAY + path, init);
    const text = await response.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) { json = null; }
    return Object.assign(
      {
        ok: true, status: response.status, id: json && json.id, displayName: json && json.display_name,
        errorType: json && json.type,
      },
      headersOf(response));
  } catch (error) {
    return { ok: false, error: error.name, message: String(error.message) };
  }
}

async function run() {
  const scenario = window.SCENARIO || "read";
  const result = { origin: location.origin, scenario: scenario, steps: [] };
  if (scenario === "read") {
    result.steps.push(await attempt("GET", "/my-org/details"));
  } else if (scenario === "head") {
    // A HEAD with Authorization is preflighted with Access-Control-Request-Method: HEAD.
    result.steps.push(await attempt("HEAD", "/my-org/details"));
  } else if (scenario === "patch") {
    result.steps.push(await attempt("PATCH", "/my-org/details", { display_name: "Renamed by the browser" }));
    result.steps.push(await attempt("GET", "/my-org/details"));
  } else if (scenario === "errors") {
    // Refusals must stay readable: a SPA has to tell a bad token from a missing scope from a network failure.
    result.steps.push(await attempt("GET", "/my-org/details", undefined, "not-a-token"));
    result.steps.push(await attempt("GET", "/my-org/details", undefined, null));
    result.steps.push(await attempt("PATCH", "/my-org/details", { display_name: "Not allowed" }));
  } else if (scenario === "burst") {
    const all = [];
    for (let i = 0; i < 12; i++) all.push(attempt("GET", "/my-org/details"));
    result.steps = await Promise.all(all);
  }
  return result;
}

run()
  .then((result) => { document.getElementById("result").textContent = JSON.stringify(result); })
  .catch((error) => { document.getElementById("result").textContent = JSON.stringify({ crashed: String(error) }); })
  .finally(() => { document.title = "done"; });
