// fetch() against the app's own API with the session cookie and CSRF token.

export function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

export async function getJSON(url, { signal } = {}) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal });
  if (response.redirected && new URL(response.url).pathname.startsWith("/accounts/login")) {
    throw new HttpError(401, "Your session has ended. Sign in again.");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new HttpError(response.status, (body && body.detail) || `The server answered ${response.status}.`);
  return body;
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The one rule for file sizes on every page (the upload cards and the recent-uploads table):
// binary units, one decimal below 100 of a unit, whole units above.
export function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let value = Number(bytes) || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${value} byte${value === 1 ? "" : "s"}`;
  return `${value < 100 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// Elements that carry a size in bytes (data-bytes) show it by that rule.
export function showSizes(root = document) {
  for (const node of root.querySelectorAll("[data-bytes]")) node.textContent = formatBytes(node.dataset.bytes);
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

// The upload stage labels: one table, viewer/presenters.py's STAGES, rendered into the page.
let stageLabels = null;
export function stageLabel(stage) {
  if (!stageLabels) {
    const node = document.getElementById("stage-labels");
    stageLabels = node ? JSON.parse(node.textContent) : { labels: {}, unknown: "" };
  }
  return stageLabels.labels[stage] || stageLabels.unknown;
}
