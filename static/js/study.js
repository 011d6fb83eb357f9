// Study page: while series are being prepared, show their progress; reload when new series arrive.
import { getJSON, sleep } from "./api.js";

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
