// Segmentations (DICOM SEG) overlaid in colour on the series they segment.
//
// The server lists them (GET /api/series/<id>/segmentations/) and renders, for every axial,
// coronal or sagittal image, an RGBA PNG of the same size with each segment in its colour
// (?segments=1,3 for some of them). Each viewport gets a <canvas> in its stage, above the image
// and below the SVG lines, so it follows zoom and pan; it is redrawn whenever the viewport shows
// another image (viewer.onImageShown). The "Segments" panel has a checkbox per segment and an
// opacity slider. On a SEG series' own page, a note links to the series it is overlaid on.
import { getJSON } from "../api.js";

const PLANES = ["axial", "coronal", "sagittal"];
const AHEAD = 4; // overlay images fetched ahead of the one shown, each way
const KEEP = 300; // decoded overlay images kept

function el(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.append(node);
  return node;
}

export class Segments {
  constructor(viewer) {
    this.viewer = viewer;
    this.items = []; // [{series, label, segments, overlay, on: Set of segment numbers}]
    this.opacity = 1;
    this.states = new WeakMap(); // viewport -> {canvas, key}
    this.images = new Map(); // url -> Promise of a loaded Image (least recently used first)
    const config = viewer.config;
    if (config.segmentationOf) this._noteOverlaidOn(config.segmentationOf);
    const url = config.urls?.segmentations;
    if (!url) return;
    getJSON(url)
      .then((items) => {
        this.items = items.map((item) => ({ ...item, on: new Set(item.segments.map((s) => s.number)) }));
        if (!this.items.length) return;
        this._buildPanel();
        this.redrawAll();
      })
      .catch(() => {}); // no overlay is no reason to disturb the images
  }

  /** Hook: `viewport` now shows image `index`. */
  show(viewport, index) {
    if (!this.items.length || !PLANES.includes(viewport.plane)) return;
    // only over the series these segmentations were listed for (a layout may show others)
    const series = viewport.source.id;
    if (series !== this.viewer.series.id) {
      this.states.get(viewport)?.canvas.remove();
      return;
    }
    let state = this.states.get(viewport);
    if (!state || !state.canvas.isConnected) {
      const canvas = document.createElement("canvas");
      canvas.className = "seg-overlay";
      canvas.width = canvas.height = 1;
      viewport.stage.insertBefore(canvas, viewport.svg);
      state = { canvas, key: null };
      this.states.set(viewport, state);
    }
    state.canvas.style.opacity = String(this.opacity);
    const urls = this._urls(viewport.plane, index);
    const key = urls.join(" ");
    if (key === state.key) return;
    state.key = key;
    state.canvas.dataset.index = String(index);
    Promise.all(urls.map((url) => this._image(url))).then((images) => {
      if (state.key !== key) return;
      const loaded = images.filter(Boolean);
      const canvas = state.canvas;
      const first = loaded[0];
      canvas.width = first ? first.naturalWidth : 1;
      canvas.height = first ? first.naturalHeight : 1;
      const context = canvas.getContext("2d");
      context.clearRect(0, 0, canvas.width, canvas.height);
      for (const image of loaded) context.drawImage(image, 0, 0, canvas.width, canvas.height);
      canvas.dataset.shown = key;
    });
    for (let d = 1; d <= AHEAD; d++) {
      for (const near of [index + d * viewport.direction, index - d * viewport.direction]) {
        if (near >= 0 && near < viewport.count) for (const url of this._urls(viewport.plane, near)) this._image(url);
      }
    }
  }

  redrawAll() {
    for (const viewport of this.viewer.viewports) {
      const state = this.states.get(viewport);
      if (state) state.key = null;
      if (viewport.displayed) this.show(viewport, viewport.displayed.index);
    }
  }

  /** The overlay URLs of one plane image: one per segmentation with a segment switched on. */
  _urls(plane, index) {
    const urls = [];
    for (const item of this.items) {
      if (!item.on.size) continue;
      let url = item.overlay.replace("{plane}", plane).replace("{index}", String(index));
      if (item.on.size < item.segments.length) url += `?segments=${[...item.on].sort((a, b) => a - b).join(",")}`;
      urls.push(url);
    }
    return urls;
  }

  _image(url) {
    let found = this.images.get(url);
    if (found) {
      this.images.delete(url);
      this.images.set(url, found);
      return found;
    }
    found = new Promise((resolve) => {
      const image = new Image();
      image.decoding = "async";
      image.onload = () => resolve(image);
      image.onerror = () => {
        this.images.delete(url); // a rebuilt series: the next try asks again
        resolve(null);
      };
      image.src = url;
    });
    this.images.set(url, found);
    while (this.images.size > KEEP) this.images.delete(this.images.keys().next().value);
    return found;
  }

  // ---- panel -------------------------------------------------------------------------------
  _buildPanel() {
    const toolbar = document.querySelector(".toolbar");
    const area = document.querySelector(".viewer-area");
    if (!toolbar || !area) return;
    const button = el("button", "btn small");
    button.type = "button";
    button.id = "segments-open";
    button.textContent = "Segments";
    button.title = "Segmentations overlaid on this series";
    button.setAttribute("aria-pressed", "false");
    button.setAttribute("aria-controls", "panel-segments");
    toolbar.insertBefore(button, document.getElementById("help-open"));

    const panel = el("aside", "side-panel segments-panel", area);
    panel.id = "panel-segments";
    panel.hidden = true;
    panel.setAttribute("aria-label", "Segments");
    el("h2", "", panel).textContent = "Segments";
    for (const item of this.items) {
      el("h3", "", panel).textContent = item.label || `Segmentation ${item.series}`;
      const list = el("ul", "segment-list", panel);
      for (const segment of item.segments) {
        const row = el("li", "", list);
        const label = el("label", "", row);
        label.title = [segment.category, segment.type].filter(Boolean).join(" · ");
        const box = el("input", "", label);
        box.type = "checkbox";
        box.checked = true;
        box.dataset.series = String(item.series);
        box.dataset.number = String(segment.number);
        const swatch = el("span", "swatch", label);
        swatch.style.background = segment.color;
        el("span", "", label).textContent = segment.label;
        box.addEventListener("change", () => {
          if (box.checked) item.on.add(segment.number);
          else item.on.delete(segment.number);
          this.redrawAll();
        });
      }
    }
    const opacity = el("label", "segment-opacity", panel);
    el("span", "", opacity).textContent = "Opacity";
    const slider = el("input", "", opacity);
    slider.type = "range";
    slider.id = "segment-opacity";
    slider.min = "0";
    slider.max = "100";
    slider.value = "100";
    slider.addEventListener("input", () => {
      this.opacity = Number(slider.value) / 100;
      for (const viewport of this.viewer.viewports) {
        const state = this.states.get(viewport);
        if (state) state.canvas.style.opacity = String(this.opacity);
      }
    });

    const setOpen = (open) => {
      panel.hidden = !open;
      button.setAttribute("aria-pressed", String(open));
      for (const viewport of this.viewer.viewports) requestAnimationFrame(() => viewport.view.fitted && viewport.fit());
    };
    button.addEventListener("click", () => {
      const open = panel.hidden;
      if (open) this.viewer.showPanel(null); // one side panel at a time
      setOpen(open);
    });
    for (const tab of document.querySelectorAll("[role=tab]")) tab.addEventListener("click", () => setOpen(false));
  }

  _noteOverlaidOn(target) {
    const toolbar = document.querySelector(".toolbar");
    if (!toolbar) return;
    const note = el("p", "seg-note");
    note.id = "seg-note";
    note.append("Segmentation, overlaid in colour on ");
    const link = el("a", "", note);
    link.href = target.url;
    const name = target.number !== null ? `series #${target.number}` : target.description || "its series";
    link.textContent = `${name} (${target.modality})`;
    toolbar.insertBefore(note, document.getElementById("help-open"));
  }
}
