// "Series still processing": show progress and open the viewer as soon as the series has images.
import { getJSON, sleep } from "./api.js";

const box = document.getElementById("processing");
const progress = document.getElementById("processing-progress");
const text = document.getElementById("processing-text");

async function watch() {
  for (;;) {
    await sleep(1500);
    let status;
    try {
      status = await getJSON(box.dataset.statusUrl);
    } catch (error) {
      if (text) text.textContent = error.message;
      continue;
    }
    if (status.has_planes || status.render_status === "failed") {
      location.reload();
      return;
    }
    if (progress) {
      progress.max = Math.max(status.images_total, 1);
      progress.value = status.images_done;
    }
    if (text) text.textContent = status.images_total ? `${status.images_done} of ${status.images_total} images ready` : "Reading the files…";
  }
}

if (box && progress) watch();
