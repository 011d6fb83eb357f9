// One image viewport: a plane of a series (its `source`, series.js), its own window, index and
// zoom/pan, its slider, overlays and gestures; a drop target for series dragged from the strip.
//
// The image on screen stays until the next one is decoded, so scrolling and windowing never
// flash. While the window is being dragged, an SVG filter stretches the image on screen to the
// new window at once; the properly rendered image replaces it when it arrives.

import { applyDisplay, buildColourBar, DisplayState, filterMarkup, fitInsets } from "./display.js"; // h-ui
import { edgeLetters, slicePosition } from "./geometry.js";

let serial = 0;
const CLICK_PX = 5;

function el(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.append(node);
  return node;
}

function navButton(parent, symbol, label) {
  const button = el("button", "", parent);
  button.type = "button";
  button.textContent = symbol;
  button.title = label;
  button.setAttribute("aria-label", label);
  return button;
}

const SVG = "http://www.w3.org/2000/svg";
/** The drag data type of a series dragged from the series strip (its id). */
export const SERIES_MIME = "application/x-dicomviewer-series";

export class Viewport {
  constructor(viewer, { source, plane, info, title = "", color = "#3b82f6", letters = null }) {
    this.viewer = viewer;
    this.source = source;
    this.plane = plane;
    this.color = color;
    this.setWindowState(source.defaultWindow, true, "Default", "default");
    this.info = info;
    this.count = info.count;
    this.id = `vp${++serial}`;
    this.index = 0;
    this.size = { w: info.width || 1, h: info.height || 1 };
    this.view = { scale: 1, x: 0, y: 0, fitted: true };
    this.displayed = null;
    this.wanted = null;
    this.seq = 0;
    this.direction = 1;
    this.pointers = new Map();
    this.wheelRest = 0;
    this.display = new DisplayState(source); // h-ui: invert, colour map, slab of this viewport
    this._build(title, color, letters);
    this._bind();
  }

  // ---- DOM -------------------------------------------------------------------------------
  _build(title, color, letters) {
    const root = el("div", "vp");
    root.dataset.plane = this.plane;
    root.dataset.series = String(this.source.id);
    root.style.setProperty("--vp-color", color);
    this.root = root;
    const canvas = el("div", "vp-canvas", root);
    canvas.tabIndex = -1;
    canvas.setAttribute("aria-label", `${title || this.plane} image`);
    this.canvas = canvas;
    this.stage = el("div", "vp-stage", canvas);
    this.img = el("img", "", this.stage);
    this.img.alt = "";
    this.img.draggable = false;
    this.svg = document.createElementNS(SVG, "svg");
    this.svg.setAttribute("preserveAspectRatio", "none");
    this.stage.append(this.svg);
    // window preview, invert and colour map: one table per channel (h-ui, display.js)
    const defs = document.createElementNS(SVG, "svg");
    defs.setAttribute("width", "0");
    defs.setAttribute("height", "0");
    defs.style.position = "absolute";
    defs.innerHTML = filterMarkup(this.id);
    canvas.append(defs);
    this.funcs = [...defs.querySelectorAll("feFuncR, feFuncG, feFuncB")];
    this.ov = {};
    for (const corner of ["tl", "tr", "bl", "br"]) this.ov[corner] = el("div", `vp-ov ${corner}`, canvas);
    this.letters = {};
    for (const edge of ["top", "bottom", "left", "right"]) this.letters[edge] = el("div", `vp-letter ${edge}`, canvas);
    if (letters) this.setLetters(letters);
    buildColourBar(this, canvas); // h-ui
    el("div", "vp-busy", canvas);
    this.message = el("div", "vp-message", canvas);
    this.message.setAttribute("role", "status");
    const cache = el("div", "vp-cache", root);
    this.cacheBar = el("div", "", cache);
    const nav = el("div", "vp-nav", root);
    if (title) el("span", "vp-title", nav).textContent = title;
    const prev = navButton(nav, "‹", "Previous image");
    this.slider = el("input", "", nav);
    this.slider.type = "range";
    this.slider.min = "0";
    this.slider.max = String(Math.max(0, this.count - 1));
    this.slider.step = "1";
    this.slider.setAttribute("aria-label", `${title || "Image"} number`);
    const next = navButton(nav, "›", "Next image");
    this.counter = el("output", "", nav);
    prev.addEventListener("click", () => this.step(-1));
    next.addEventListener("click", () => this.step(1));
    this.slider.addEventListener("input", () => this.setIndex(Number(this.slider.value), "slider"));
    this.slider.addEventListener("focus", () => this.viewer.activate(this));
  }

  mount(parent) {
    parent.append(this.root);
    this.resizeObserver = new ResizeObserver(() => (this.view.fitted ? this.fit() : this._apply()));
    this.resizeObserver.observe(this.canvas);
    this.fit();
  }

  destroy() {
    this.resizeObserver?.disconnect();
    this.viewer.loader.pin(null, this.displayed?.objectUrl);
    this.root.remove();
  }

  setLetters(letters) {
    for (const edge of Object.keys(this.letters)) this.letters[edge].textContent = letters ? letters[edge] : "";
  }

  setActive(active) {
    this.root.classList.toggle("active", active);
  }

  setTool(tool) {
    for (const name of [...this.root.classList]) if (name.startsWith("tool-")) this.root.classList.remove(name);
    this.root.classList.add(`tool-${tool}`);
    if (this.viewer.measure?.isTool(tool)) this.root.classList.add("tool-measure"); // measure.js
  }

  // ---- navigation ------------------------------------------------------------------------
  step(delta) {
    this.setIndex(this.index + delta, "step");
  }

  setIndex(index, source = "api") {
    const clamped = Math.min(this.count - 1, Math.max(0, Math.round(index)));
    if (clamped === this.index && this.wanted) return;
    if (clamped !== this.index) this.direction = clamped > this.index ? 1 : -1;
    this.index = clamped;
    this.slider.value = String(clamped);
    this.request();
    this.viewer.indexChanged(this, source);
  }

  /** Ask for the image at the current index and window; neighbours are prefetched. */
  request() {
    const url = this.viewer.imageKey(this.plane, this.index, undefined, this);
    this.wanted = url;
    const seq = ++this.seq;
    const meta = { url, index: this.index, window: this.window, seq, asked: performance.now() };
    this.updateOverlay();
    if (!this.viewer.loader.ready(url)) {
      clearTimeout(this.busyTimer);
      this.busyTimer = setTimeout(() => {
        if (this.wanted === url && this.displayed?.url !== url) this.root.classList.add("loading");
        if (this.wanted === url && this.viewer.loader.waiting(url)) this.message.textContent = "Preparing images…";
      }, 200);
    }
    this.viewer.loader
      .get(url, this.id)
      .then((result) => this._arrived(meta, result))
      .catch((error) => {
        if (this.wanted !== url) return;
        this.root.classList.remove("loading");
        this.message.textContent = error.message;
      });
    this.prefetch();
  }

  /** The loader's key of image `index` here (h-ui: with this viewport's slab). */
  key(index, window = this.window) {
    return this.viewer.imageKey(this.plane, index, window, this);
  }

  prefetch() {
    const cine = this.viewer.cinePlaying && this.viewer.active === this;
    const ahead = cine ? 48 : 24;
    const behind = cine ? 2 : 8;
    const wanted = [];
    const window = this.window;
    for (let d = 1; d <= Math.max(ahead, behind); d++) {
      if (d <= ahead) {
        let forward = this.index + d * this.direction;
        if (cine) forward = ((forward % this.count) + this.count) % this.count;
        if (forward >= 0 && forward < this.count) wanted.push([this.viewer.imageKey(this.plane, forward, window, this), d]);
      }
      const backward = this.index - d * this.direction;
      if (d <= behind && backward >= 0 && backward < this.count) {
        wanted.push([this.viewer.imageKey(this.plane, backward, window, this), d * 3]);
      }
    }
    this.viewer.loader.prefetch(this.id, wanted);
  }

  _arrived(meta, result) {
    const current = this.wanted === meta.url;
    // A late image still helps while scrolling fast: show it if nothing newer is on screen.
    const newer = meta.seq > (this.displayed?.seq ?? -1) && !this.viewer.loader.ready(this.wanted);
    if (!current && !newer) return;
    this._show(meta, result);
    if (current) {
      this.viewer.latency(performance.now() - meta.asked);
      clearTimeout(this.busyTimer);
      this.root.classList.remove("loading");
      this.message.textContent = "";
    }
  }

  _show(meta, result) {
    const previous = this.displayed?.objectUrl;
    this.img.src = result.objectUrl;
    this.img.dataset.index = String(meta.index);
    this.img.dataset.key = meta.url;
    this.img.dataset.src = result.url;
    this.viewer.loader.pin(result.objectUrl, previous);
    this.displayed = { ...meta, objectUrl: result.objectUrl };
    if (result.width !== this.size.w || result.height !== this.size.h) {
      this.size = { w: result.width, h: result.height };
      this.svg.setAttribute("viewBox", `0 0 ${this.size.w} ${this.size.h}`);
      if (this.view.fitted) this.fit();
      else this._apply();
    }
    this.preview();
    this.viewer.imageShown(this);
    this.viewer.onImageShown?.(this, meta.index); // hook for overlays drawn per image (segments.js)
  }

  // ---- window preview, invert, colour map -------------------------------------------------
  /** Stretch the image on screen from the window it was rendered at to the current one, and
   *  apply this viewport's invert and colour map (h-ui: display.js). */
  preview() {
    applyDisplay(this);
  }

  // ---- window -----------------------------------------------------------------------------
  /** This viewport's window: `isDefault` = the series' own (images asked for without a window);
   *  `option` is what the preset list shows for it. */
  setWindowState(window, isDefault, name, option) {
    this.window = window ? { ...window } : null;
    this.windowIsDefault = isDefault;
    this.windowName = name;
    this.windowOption = option;
  }

  copyWindow(other) {
    this.setWindowState(other.window, other.windowIsDefault, other.windowName, other.windowOption);
  }

  // ---- zoom and pan ----------------------------------------------------------------------
  fit() {
    const inset = fitInsets(this); // h-ui: room for the overlays beside the image on phones
    const width = this.canvas.clientWidth - inset.left - inset.right;
    const height = this.canvas.clientHeight - inset.top - inset.bottom;
    if (width <= 0 || height <= 0) return;
    const scale = Math.min(width / this.size.w, height / this.size.h);
    const x = inset.left + (width - this.size.w * scale) / 2;
    this.view = { scale, x, y: inset.top + (height - this.size.h * scale) / 2, fitted: true };
    this._apply();
  }

  zoomAt(factor, clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    const cx = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    const cy = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    const scale = Math.min(50, Math.max(0.05, this.view.scale * factor));
    const ratio = scale / this.view.scale;
    this.view = { scale, x: cx - (cx - this.view.x) * ratio, y: cy - (cy - this.view.y) * ratio, fitted: false };
    this._apply();
  }

  pan(dx, dy) {
    this.view = { ...this.view, x: this.view.x + dx, y: this.view.y + dy, fitted: false };
    this._apply();
  }

  _apply() {
    const { scale, x, y } = this.view;
    this.stage.style.width = `${this.size.w}px`;
    this.stage.style.height = `${this.size.h}px`;
    this.stage.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    this.svg.setAttribute("viewBox", `0 0 ${this.size.w} ${this.size.h}`);
    // one screen pixel in image pixels: lines keep their width on screen whatever the zoom
    this.stage.style.setProperty("--px", String(1 / scale));
    this.updateOverlay();
  }

  /** Image pixel (row, col) under a client point; pixel centres are whole numbers. */
  clientToImage(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return {
      col: (clientX - rect.left - this.view.x) / this.view.scale - 0.5,
      row: (clientY - rect.top - this.view.y) / this.view.scale - 0.5,
    };
  }

  // ---- overlays --------------------------------------------------------------------------
  setLines(lines) {
    this.svg.replaceChildren();
    for (const line of lines) {
      const node = document.createElementNS(SVG, "line");
      for (const key of ["x1", "y1", "x2", "y2"]) node.setAttribute(key, String(line[key]));
      node.setAttribute("stroke", line.color);
      node.dataset.plane = line.plane;
      if (line.source !== undefined) node.dataset.source = String(line.source);
      this.svg.append(node);
    }
  }

  updateOverlay() {
    const source = this.source;
    const o = source.overlay;
    const lines = (...items) => items.filter(Boolean).join("<br>");
    const esc = (text) => String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
    this.ov.tl.innerHTML = lines(o.patientName && `<b>${esc(o.patientName)}</b>`, o.patientId && esc(o.patientId), o.studyDate && esc(o.studyDate));
    this.ov.tr.innerHTML = lines(esc(o.seriesLabel), `${esc(o.modality)} · ${esc(source.planeLabel(this.plane))}`);
    const position = this.info.step_dir ? slicePosition(this.info, this.index) : null;
    this.ov.bl.innerHTML = lines(
      `<b data-role="image-number">Im ${this.index + 1} / ${this.count}</b>`,
      position && `${position.axis} ${position.mm.toFixed(1)} mm`,
      this.info.step_mm && `step ${this.info.step_mm.toFixed(2)} mm`,
    );
    const window = this.window;
    this.ov.br.innerHTML = lines(
      window ? `W ${formatNumber(window.width)} L ${formatNumber(window.center)}` : source.isColor ? "colour" : "",
      `${Math.round(this.view.scale * 100)}%`,
    );
    this.counter.textContent = `${this.index + 1} / ${this.count}`;
  }

  updateCacheBar(share) {
    this.cacheBar.style.width = `${Math.round(share * 100)}%`;
  }

  // ---- gestures --------------------------------------------------------------------------
  _bind() {
    const canvas = this.canvas;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("pointerdown", (event) => this._down(event));
    canvas.addEventListener("pointermove", (event) => this._move(event));
    canvas.addEventListener("pointerup", (event) => this._up(event));
    canvas.addEventListener("pointercancel", (event) => this._up(event, true));
    canvas.addEventListener("dblclick", () => this.viewer.toggleMaximise(this));
    // a series dragged from the strip: shown here
    const root = this.root;
    root.addEventListener("dragover", (event) => {
      if (!event.dataTransfer.types.includes(SERIES_MIME)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      root.classList.add("drop-target");
    });
    root.addEventListener("dragleave", (event) => {
      if (!root.contains(event.relatedTarget)) root.classList.remove("drop-target");
    });
    root.addEventListener("drop", (event) => {
      root.classList.remove("drop-target");
      const id = event.dataTransfer.getData(SERIES_MIME);
      if (!id) return;
      event.preventDefault();
      this.viewer.showSeries(this, Number(id));
    });
    canvas.addEventListener("wheel", (event) => this._wheel(event), { passive: false });
  }

  _mode(event) {
    if (event.pointerType === "mouse") {
      if (event.button === 2) return "window";
      if (event.button === 1 || event.shiftKey) return "pan";
      if (event.ctrlKey || event.metaKey) return "zoom";
    }
    if (this.viewer.measure?.isTool(this.viewer.tool)) return "measure"; // measure.js draws
    return this.viewer.tool;
  }

  _down(event) {
    this.viewer.activate(this);
    this.canvas.focus({ preventScroll: true });
    this.canvas.setPointerCapture(event.pointerId);
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (this.pointers.size === 2) {
      this.gesture = { mode: "pinch", ...this._pinchState() };
      return;
    }
    if (this.pointers.size > 2) return;
    this.gesture = {
      mode: this._mode(event),
      startX: event.clientX,
      startY: event.clientY,
      lastX: event.clientX,
      lastY: event.clientY,
      rest: 0,
      moved: false,
      button: event.button,
    };
    if (this.gesture.mode === "measure") this.viewer.measure.down(this, event); // measure.js
    event.preventDefault();
  }

  _pinchState() {
    const [a, b] = [...this.pointers.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, midX: (a.x + b.x) / 2, midY: (a.y + b.y) / 2 };
  }

  _move(event) {
    if (!this.pointers.has(event.pointerId)) {
      if (event.pointerType === "mouse") this.viewer.measure?.hover(this, event); // measure.js: live probe
      return;
    }
    if (!this.gesture) return;
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const g = this.gesture;
    if (g.mode === "pinch") {
      if (this.pointers.size < 2) return;
      const now = this._pinchState();
      this.pan(now.midX - g.midX, now.midY - g.midY);
      this.zoomAt(now.distance / g.distance, now.midX, now.midY);
      Object.assign(g, now);
      return;
    }
    if (g.mode === "measure") {
      this.viewer.measure.move(this, event); // measure.js
      return;
    }
    const dx = event.clientX - g.lastX;
    const dy = event.clientY - g.lastY;
    g.lastX = event.clientX;
    g.lastY = event.clientY;
    if (Math.hypot(event.clientX - g.startX, event.clientY - g.startY) > CLICK_PX) g.moved = true;
    if (!g.moved) return;
    if (g.mode === "scroll") {
      const perImage = Math.min(20, Math.max(2, this.canvas.clientHeight / Math.max(this.count, 1)));
      g.rest += dy;
      const steps = Math.trunc(g.rest / perImage);
      if (steps) {
        g.rest -= steps * perImage;
        this.step(steps);
      }
    } else if (g.mode === "window") {
      this.viewer.dragWindow(dx, dy);
    } else if (g.mode === "zoom") {
      this.zoomAt(Math.exp(-dy * 0.01), g.startX, g.startY);
    } else if (g.mode === "pan") {
      this.pan(dx, dy);
    }
  }

  _up(event, cancelled = false) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    const g = this.gesture;
    if (this.pointers.size > 0) {
      if (g?.mode === "pinch") this.gesture = null; // lifting one finger ends the pinch
      return;
    }
    this.gesture = null;
    if (!g || cancelled) return;
    if (g.mode === "measure") {
      this.viewer.measure.up(this, event); // measure.js
      return;
    }
    if (g.mode === "window" && g.moved) this.viewer.commitWindow();
    if (!g.moved && g.mode !== "pinch" && g.button !== 2) {
      const { row, col } = this.clientToImage(event.clientX, event.clientY);
      this.viewer.pointAt(this, row, col);
    }
  }

  _wheel(event) {
    event.preventDefault();
    this.viewer.activate(this);
    if (event.ctrlKey || event.metaKey) {
      this.zoomAt(Math.exp(-event.deltaY * 0.002), event.clientX, event.clientY);
      return;
    }
    const delta = event.deltaMode === 0 ? event.deltaY : event.deltaY * 40;
    if (Math.abs(delta) >= 50) {
      this.wheelRest = 0;
      this.step(Math.sign(delta));
      return;
    }
    this.wheelRest += delta; // trackpads send many small deltas
    if (Math.abs(this.wheelRest) >= 30) {
      this.step(Math.sign(this.wheelRest));
      this.wheelRest = 0;
    }
  }
}

export function formatNumber(value) {
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return String(Number(value.toFixed(2)));
}
