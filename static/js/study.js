// Study page: while series are being prepared, show their progress; reload when new series arrive.
import { csrfToken, getJSON, sleep } from "./api.js";

const grid = document.getElementById("series-grid");

function render(card, series) {
  const status = card.querySelector('[data-role="status"]');
  card.dataset.status = series.render_status;
  if (series.render_status === "done") {
    status.replaceChildren();
    const img = card.querySelector(".series-thumb img");
    if (img.dataset.version !== String(series.render_version)) {
      img.dataset.version = String(series.render_version);
      img.src = series.thumbnail_url; // signed for the new version
    }
    return;
  }
  if (series.render_status === "failed") {
    status.innerHTML = '<span class="status failed">Some images could not be prepared</span>';
    return;
  }
  let progress = status.querySelector("progress");
  if (!progress) {
    status.innerHTML = '<span class="status processing">Preparing images</span><progress></progress>';
    progress = status.querySelector("progress");
  }
  progress.max = Math.max(series.images_total, 1);
  progress.value = series.images_done;
}

async function watch() {
  for (;;) {
    const busy = [...grid.querySelectorAll("[data-series]")].some(
      (card) => !["done", "failed"].includes(card.dataset.status),
    );
    if (!busy) await sleep(10000);
    let body;
    try {
      body = await getJSON(grid.dataset.statusUrl);
    } catch {
      return;
    }
    if (body.series.length !== Number(grid.dataset.count)) {
      location.reload(); // another upload added series to this study
      return;
    }
    for (const series of body.series) {
      const card = grid.querySelector(`[data-series="${series.id}"]`);
      if (card) render(card, series);
    }
    await sleep(busy ? 1500 : 0);
  }
}

if (grid) watch();

// "Delete study…" asks first, in a dialog (no inline script: the CSP forbids it).
for (const button of document.querySelectorAll("[data-opens]")) {
  const dialog = document.getElementById(button.dataset.opens);
  if (!dialog) continue;
  button.addEventListener("click", () => dialog.showModal());
  for (const close of dialog.querySelectorAll("[data-closes]")) close.addEventListener("click", () => dialog.close());
}

// "Links" (the owner's): make a share link through the API and show its address once, to copy.
const links = document.getElementById("links");
const linkForm = document.getElementById("link-form");

async function makeLink(event) {
  event.preventDefault();
  const error = document.getElementById("link-error");
  error.hidden = true;
  const body = {
    label: linkForm.elements.label.value,
    expires_in_hours: Number(linkForm.elements.expires_in_hours.value),
    deidentified: linkForm.elements.deidentified.checked,
  };
  const response = await fetch(links.dataset.api, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = answer.detail || Object.values(answer).flat().join(" ") || `The server answered ${response.status}.`;
    error.textContent = `No link was made: ${detail}`;
    error.hidden = false;
    return;
  }
  document.getElementById("link-url").value = answer.url;
  document.getElementById("link-made").hidden = false;
  document.getElementById("link-copy").textContent = "Copy";
  listLink(answer);
  linkForm.reset();
}

function when(iso) {
  const d = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

/** The new link at the top of the list, with its Revoke form (as the page renders them). */
function listLink(link) {
  const table = document.getElementById("link-list");
  const row = document.createElement("tr");
  row.dataset.link = String(link.id);
  const cells = [link.label || "—", when(new Date().toISOString()), when(link.expires), "0×"].map((text) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    return cell;
  });
  if (link.deidentified) cells[0].insertAdjacentHTML("beforeend", ' <span class="badge">de-identified</span>');
  const form = document.createElement("form");
  form.method = "post";
  form.className = "inline";
  form.action = table.dataset.revoke.replace("987654321", String(link.id));
  const csrf = document.createElement("input");
  Object.assign(csrf, { type: "hidden", name: "csrfmiddlewaretoken", value: csrfToken() });
  const button = document.createElement("button");
  Object.assign(button, { type: "submit", className: "btn small", textContent: "Revoke" });
  form.append(csrf, button);
  const action = document.createElement("td");
  action.append(form);
  row.append(...cells, action);
  table.tBodies[0].prepend(row);
  table.hidden = false;
  document.getElementById("link-none")?.remove();
}

if (links && linkForm) {
  linkForm.addEventListener("submit", makeLink);
  document.getElementById("link-copy").addEventListener("click", async (event) => {
    const input = document.getElementById("link-url");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      event.target.textContent = "Copied";
    } catch {
      event.target.textContent = "Press Ctrl+C";
    }
  });
}
