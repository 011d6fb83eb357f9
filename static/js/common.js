// Small behaviours shared by every page.

// Thumbnails may not exist yet while a series is being prepared (503): try again a few times.
function retryImage(img) {
  const tries = Number(img.dataset.tries || 0);
  if (tries >= 20) return;
  img.dataset.tries = String(tries + 1);
  const delay = Math.min(1000 * (tries + 1), 5000);
  setTimeout(() => {
    const url = new URL(img.src, location.href);
    url.searchParams.set("retry", String(tries + 1));
    img.src = url.toString();
  }, delay);
}

function watchImages(root = document) {
  for (const img of root.querySelectorAll("img[data-retry]")) {
    if (img.dataset.watched) continue;
    img.dataset.watched = "1";
    img.addEventListener("error", () => retryImage(img));
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) retryImage(img);
  }
}

// A whole table row opens its study (the link inside stays the accessible target).
document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (!row || event.target.closest("a, button, input, select, summary")) return;
  if (event.ctrlKey || event.metaKey) window.open(row.dataset.href, "_blank");
  else location.href = row.dataset.href;
});

document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// "Go back" buttons of the error pages (no inline script: the Content-Security-Policy forbids it).
for (const button of document.querySelectorAll("[data-back]")) {
  if (history.length > 1) button.hidden = false;
  button.addEventListener("click", () => history.back());
}

watchImages();
export { watchImages };
