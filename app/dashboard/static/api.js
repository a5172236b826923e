// Talking to /api/v1: one fetch wrapper that adds the key, turns error bodies into
// ApiError (status, detail, per-field errors) and tells the page whether the API answered.
export class ApiError extends Error {
  constructor(status, detail, errors = [], errorCount = null) {
    super(detail);
    this.status = status;
    this.errors = errors;
    this.errorCount = errorCount ?? errors.length;  // a seed file's bad lines: all of them, `errors` the first
  }
}

// A network failure or a gateway/unavailable answer: the API could not be reached.
export class Unreachable extends Error {}

export function makeApi(base, getKey, onReach) {
  async function send(method, path, { body, form, raw, headers: extra } = {}) {
    const headers = { Authorization: "Bearer " + getKey(), ...(extra || {}) };
    let payload;
    if (form) payload = form;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(base + path, { method, headers, body: payload });
    } catch (err) {
      onReach(false, "the API did not answer (" + (err.message || "network error") + ")");
      throw new Unreachable("the API cannot be reached");
    }
    if ([502, 503, 504].includes(response.status)) {
      const detail = await response.json().then((b) => b.detail).catch(() => response.statusText);
      onReach(false, `the API answered ${response.status}: ${detail || "unavailable"}`);
      throw new Unreachable(detail || "the API is unavailable");
    }
    onReach(true);
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new ApiError(response.status, data.detail || response.statusText || "error " + response.status,
        data.errors || [], data.error_count);
    }
    if (raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }
  return {
    get: (path) => send("GET", path),
    post: (path, body) => send("POST", path, { body }),
    put: (path, body) => send("PUT", path, { body }),
    patch: (path, body) => send("PATCH", path, { body }),
    del: (path) => send("DELETE", path),
    upload: (path, form) => send("POST", path, { form }),
    raw: (path) => send("GET", path, { raw: true }),
  };
}

// Fetch a file with the key and hand it to the browser as a download.
export async function download(api, path, fallbackName) {
  const response = await api.raw(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = match ? match[1] : fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
