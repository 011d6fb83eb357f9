// Upload page: send ZIPs with a real bytes-sent progress bar, then follow each ingest to the end.
import { csrfToken, formatBytes, formatDuration, getJSON, showSizes, sleep, stageLabel } from "./api.js";

const form = document.getElementById("upload-form");
const apiUrl = form.dataset.api;
const studyUrl = (id) => form.dataset.studyUrl.replace(/\/0\/$/, `/${id}/`);
const list = document.getElementById("upload-list");
const dropzone = document.getElementById("dropzone");
const input = document.getElementById("file-input");
const template = document.getElementById("upload-item");
const queue = [];
let sending = null; // the job whose bytes are on the wire

function isZip(file) {
  return /\.zip$/i.test(file.name) || ["application/zip", "application/x-zip-compressed"].includes(file.type);
}

function createItem(file) {
  const node = template.content.firstElementChild.cloneNode(true);
  const part = (role) => node.querySelector(`[data-role="${role}"]`);
  part("name").textContent = file.name;
  part("size").textContent = formatBytes(file.size);
  list.prepend(node);
  return { node, part };
}

function setBar(item, fraction) {
  item.part("bar").style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
}

function setState(item, stage, detail = "") {
  item.part("stage").textContent = stage;
  item.part("detail").textContent = detail;
}

function finish(item, cls, stage, detail = "") {
  item.node.classList.remove("uploading", "processing");
  item.node.classList.add(cls);
  item.part("cancel").hidden = true;
  setState(item, stage, detail);
}

function addFiles(files) {
  document.getElementById("no-uploads")?.remove();
  for (const file of files) {
    const item = createItem(file);
    if (!isZip(file)) {
      finish(item, "failed", "Not a ZIP file.", "Put the DICOM files (or their folders) in a .zip archive and upload that.");
      continue;
    }
    const job = { file, item, xhr: null, cancelled: false };
    item.part("cancel").addEventListener("click", () => cancel(job));
    queue.push(job);
  }
  pump();
}

function cancel(job) {
  job.cancelled = true;
  const index = queue.indexOf(job);
  if (index >= 0) queue.splice(index, 1);
  if (job.xhr) job.xhr.abort();
  finish(job.item, "failed", "Cancelled.");
}

async function pump() {
  if (sending) return;
  while (queue.length) {
    sending = queue.shift();
    const created = await send(sending);
    const job = sending;
    sending = null;
    if (created) follow(job.item, created.url);
  }
}

// One file over XMLHttpRequest: the browser streams it from disk, so size does not matter.
function send(job) {
  const { file, item } = job;
  item.node.classList.add("uploading");
  setState(item, "Uploading…");
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    job.xhr = xhr;
    const started = performance.now();
    xhr.open("POST", apiUrl);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      const fraction = event.loaded / event.total;
      const seconds = (performance.now() - started) / 1000;
      const rate = event.loaded / Math.max(seconds, 0.001);
      setBar(item, fraction);
      const left = fraction < 1 ? ` · ${formatDuration((event.total - event.loaded) / rate)} left` : "";
      setState(
        item,
        `Uploading ${formatBytes(event.loaded)} of ${formatBytes(event.total)} (${Math.floor(fraction * 100)}%)`,
        `${formatBytes(rate)}/s${left}`,
      );
      item.node.dataset.sent = String(event.loaded);
      item.node.dataset.progressEvents = String(Number(item.node.dataset.progressEvents || 0) + 1);
    };
    xhr.upload.onload = () => setState(item, "Upload complete, checking the archive…");
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 202) {
        item.node.dataset.upload = String(body.id);
        item.part("cancel").hidden = true;
        resolve(body);
        return;
      }
      finish(item, "failed", "Upload refused.", explain(xhr.status, body));
      resolve(null);
    };
    xhr.onerror = () => {
      finish(item, "failed", "The connection was lost while sending.", "Check the network and upload the file again.");
      resolve(null);
    };
    xhr.onabort = () => resolve(null);
    const data = new FormData();
    data.append("file", file, file.name);
    xhr.send(data);
  });
}

function explain(status, body) {
  if (status === 401 || status === 403) return "Your session has ended or the page is too old. Reload the page, sign in and try again.";
  if (body && body.detail) return body.detail;
  if (body && body.file) return [].concat(body.file).join(" ");
  return `The server answered ${status}. Try again; if it keeps failing, tell your administrator.`;
}

// After the upload: poll its ingest until it is done or failed.
async function follow(item, url) {
  item.node.classList.add("processing");
  setBar(item, 0);
  let failures = 0;
  for (;;) {
    let body;
    try {
      body = await getJSON(url);
      failures = 0;
    } catch (error) {
      failures += 1;
      if (error.status === 401 || error.status === 403 || failures > 20) {
        finish(item, "failed", "Lost track of this upload.", error.message);
        return;
      }
      await sleep(2000);
      continue;
    }
    setBar(item, body.progress / 100);
    setState(item, `${stageLabel(body.stage)} (${body.progress}%)`, counts(body));
    if (body.status === "done" || body.status === "failed") {
      report(item, body);
      return;
    }
    await sleep(1000);
  }
}

function counts(body) {
  const parts = [];
  if (body.files_total) parts.push(`${body.files_total} files in the archive`);
  if (body.files_dicom) parts.push(`${body.files_dicom} images stored`);
  if (body.files_skipped) parts.push(`${body.files_skipped} skipped`);
  return parts.join(" · ");
}

function report(item, body) {
  const ok = body.status === "done";
  finish(item, ok ? "done" : "failed", ok ? "Done." : "Failed.", ok ? counts(body) : body.error);
  setBar(item, 1);
  const result = item.part("result");
  result.replaceChildren();
  if (body.studies.length) {
    const actions = document.createElement("p");
    actions.className = "actions left";
    body.studies.forEach((id, number) => {
      const link = document.createElement("a");
      link.className = number === 0 ? "btn primary small" : "btn small";
      link.href = studyUrl(id);
      link.textContent = body.studies.length > 1 ? `Open study ${number + 1}` : "Open study";
      actions.append(link);
    });
    result.append(actions);
  }
  if (body.skipped.length) result.append(skippedList(body.skipped));
}

function skippedList(skipped) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = `${skipped.length} file${skipped.length === 1 ? " was" : "s were"} skipped: why`;
  const ul = document.createElement("ul");
  ul.className = "skipped";
  for (const entry of skipped.slice(0, 300)) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "mono";
    name.textContent = entry.name;
    li.append(name, `: ${entry.reason}`);
    ul.append(li);
  }
  details.append(summary, ul);
  return details;
}

// Rows of the recent-uploads table that are still running.
async function followRow(row) {
  const cell = (role) => row.querySelector(`[data-role="${role}"]`);
  for (;;) {
    let body;
    try {
      body = await getJSON(row.dataset.poll);
    } catch {
      return;
    }
    const status = cell("status");
    status.textContent = stageLabel(body.stage);
    status.className = `status ${body.status}`;
    const progress = cell("progress");
    if (progress) progress.value = body.progress;
    if (body.status === "done" || body.status === "failed") {
      if (progress) progress.remove();
      cell("files").textContent = `${body.files_dicom} stored${body.files_skipped ? `, ${body.files_skipped} skipped` : ""}`;
      const studies = cell("studies");
      studies.replaceChildren();
      body.studies.forEach((id, number) => {
        if (number) studies.append(", ");
        const link = document.createElement("a");
        link.href = studyUrl(id);
        link.textContent = "Open study";
        studies.append(link);
      });
      if (body.error) {
        const error = document.createElement("p");
        error.className = "error-text";
        error.textContent = body.error;
        status.after(error);
      }
      return;
    }
    await sleep(2000);
  }
}

dropzone.addEventListener("click", (event) => {
  if (event.target !== input && !event.target.closest("label")) input.click();
});
dropzone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    input.click();
  }
});
input.addEventListener("change", () => {
  addFiles([...input.files]);
  input.value = "";
});
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
}
for (const name of ["dragleave", "drop"]) {
  dropzone.addEventListener(name, () => dropzone.classList.remove("over"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  addFiles([...event.dataTransfer.files]);
});
// Dropping a file elsewhere on the page must not navigate away from it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
window.addEventListener("beforeunload", (event) => {
  if (sending || queue.length) {
    event.preventDefault();
    event.returnValue = "";
  }
});

showSizes();
document.querySelectorAll("tr[data-poll]").forEach(followRow);
// Files chosen before this script ran (a slow connection) are not lost.
if (input.files.length) {
  addFiles([...input.files]);
  input.value = "";
}
document.body.dataset.ready = "upload";
