// The viewer page: one plane (Slices) or axial/coronal/sagittal side by side (MPR) with a
// shared crosshair, window/level, cine, keyboard shortcuts, metadata and the tag browser.
import { getJSON, sleep } from "../api.js";
import { DisplayControls, slabQuery } from "./display.js"; // h-ui
import {
  clampIndex,
  edgeLetters,
  intersection,
  orientationDirs,
  planeWorld,
  volumeCentre,
  worldToPlane,
} from "./geometry.js";
import { ImageLoader } from "./loader.js";
import { HeaderPanel } from "./tags.js";
import { formatNumber, Viewport } from "./viewport.js";

const COLORS = { axial: "#38bdf8", coronal: "#4ade80", sagittal: "#fb923c", stack: "#3b82f6" };
const LABELS = { axial: "Axial", coronal: "Coronal", sagittal: "Sagittal", stack: "Stack" };
const MPR = ["axial", "coronal", "sagittal"];

class Viewer {
  constructor(config) {
    this.metrics = { start: performance.now(), firstImageMs: null, shown: 0 };
    this.config = config;
    this.series = config.series;
    this.planes = this.series.planes;
    this.version = this.series.render_version;
    this.urls = config.urls;
    this.overlay = config.overlay;
    this.isColor = config.isColor;
    this.inverted = config.inverted;
    this.isVolume = Boolean(this.series.is_volume && this.planes.axial);
    this.defaultWindow = this.series.window ? { ...this.series.window } : null;
    this.window = this.defaultWindow;
    this.windowIsDefault = true;
    this.windowName = "Default";
    this.tool = "scroll";
    this.layout = "slices";
    this.singlePlane = config.nativePlane in this.planes ? config.nativePlane : Object.keys(this.planes)[0];
    this.viewports = [];
    this.active = null;
    this.crosshair = this.isVolume ? volumeCentre(this.planes.axial) : null;
    this.cinePlaying = false;
    this.images = config.images; // signed URL templates of the planes, renewed before they expire
    this.imagesAt = performance.now();
    this.loader = new ImageLoader({
      urlFor: (key) => this.keyToUrl(key),
      renew: () => this.renewImageUrls(true),
      beforeLoad: () => this.renewImageUrls(false),
      onAuthLost: () => this.setPill("Your session has ended: reload and sign in.", true),
    });
    this.container = document.getElementById("viewports");
    this.panel = null;
    this.header = new HeaderPanel(this, {
      tagsPanel: document.getElementById("panel-tags"),
      metaList: document.getElementById("image-meta"),
      search: document.getElementById("tag-search"),
      source: document.getElementById("tag-source"),
      table: document.getElementById("tag-table"),
    });
    this._fillPresets();
    this._bindToolbar();
    this.display = new DisplayControls(this); // h-ui: invert, colour map, slab, PNG, fps, phone toolbar
    this._bindKeys();
    this._windowChanged("default");
    const wantMpr = location.hash === "#mpr" && this.isVolume;
    this.setLayout(wantMpr ? "mpr" : "slices");
    this._watchStatus();
    setInterval(() => this._updateCacheBars(), 700);
  }

  // ---- images ----------------------------------------------------------------------------
  /** What identifies an image in the loader's cache: plane, index, window and slab (not the
   *  URL, which is signed anew every few minutes). `display`: a viewport's DisplayState. */
  imageKey(plane, index, window = this.currentWindow(), display = null) {
    const query = [];
    if (window && !this.windowIsDefault) query.push(`wc=${window.center}&ww=${window.width}`);
    const slab = slabQuery(display, plane, this.isVolume); // h-ui: mode=mip|minip|avg&slab=<mm>
    if (slab) query.push(slab);
    return query.length ? `${plane}/${index}?${query.join("&")}` : `${plane}/${index}`;
  }

  keyToUrl(key) {
    const [path, query] = key.split("?");
    const [plane, index] = path.split("/");
    const url = this.images.planes[plane].replace("{index}", index);
    return query ? `${url}?${query}` : url;
  }

  /** Seconds the current image URLs stay valid (by the server's clock, counted here). */
  imageUrlsLeft() {
    const elapsed = (performance.now() - this.imagesAt) / 1000;
    return this.images.expires - this.images.issued - elapsed;
  }

  /** New signed URLs from the server when these are about to expire (or `force`). */
  renewImageUrls(force) {
    if (!force && this.imageUrlsLeft() > 30) return Promise.resolve();
    if (!this.renewing) {
      this.renewing = getJSON(this.urls.status)
        .then((status) => {
          if (status.images) {
            this.images = status.images;
            this.imagesAt = performance.now();
          }
        })
        .finally(() => {
          this.renewing = null;
        });
    }
    return this.renewing;
  }

  currentWindow() {
    return this.window;
  }

  planeLabel(plane) {
    const label = LABELS[plane] || plane;
    if (!this.isVolume) return label;
    if (plane !== this.config.nativePlane) return `${label} (reconstruction)`;
    return this.config.nativeExact ? label : `${label} (resampled)`;
  }

  /** Milliseconds from asking for an image to seeing it (kept for the last 1000 images). */
  latency(ms) {
    const list = this.metrics.latencies || (this.metrics.latencies = []);
    list.push(Math.round(ms));
    if (list.length > 1000) list.shift();
  }

  imageShown(viewport) {
    this.metrics.shown += 1;
    if (this.metrics.firstImageMs === null) {
      this.metrics.firstImageMs = Math.round(performance.now() - this.metrics.start);
      document.body.dataset.firstImageMs = String(this.metrics.firstImageMs);
    }
    if (viewport === this.active) this._describeCurrent();
  }

  // ---- layout ----------------------------------------------------------------------------
  setLayout(layout) {
    if (layout === "mpr" && !this.isVolume) layout = "slices";
    this.layout = layout;
    this.stopCine();
    for (const viewport of this.viewports) viewport.destroy();
    this.viewports = [];
    this.container.classList.toggle("mpr", layout === "mpr");
    const planes = layout === "mpr" ? MPR : [this.singlePlane];
    for (const plane of planes) {
      const info = this.planes[plane];
      const viewport = new Viewport(this, {
        plane,
        info,
        title: layout === "mpr" ? LABELS[plane] : "",
        color: COLORS[plane] || COLORS.stack,
        letters: this._letters(plane, info),
      });
      viewport.setTool(this.tool);
      viewport.mount(this.container);
      this.viewports.push(viewport);
    }
    this.activate(this.viewports[0]);
    for (const viewport of this.viewports) {
      const start = this.crosshair ? worldToPlane(viewport.info, this.crosshair).index : 0;
      viewport.setIndex(clampIndex(start, viewport.count), "init");
    }
    this._drawCrosshair();
    this._syncToolbar();
    history.replaceState(null, "", layout === "mpr" ? "#mpr" : location.pathname + location.search);
  }

  setSinglePlane(plane) {
    if (!this.planes[plane]) return;
    this.singlePlane = plane;
    this.setLayout("slices");
  }

  _letters(plane, info) {
    if (info.x_dir && info.y_dir) return edgeLetters(info.x_dir, info.y_dir);
    const dirs = orientationDirs(this.config.orientation);
    return dirs ? edgeLetters(dirs.xDir, dirs.yDir) : null;
  }

  activate(viewport) {
    if (this.active === viewport) return;
    this.active = viewport;
    for (const other of this.viewports) other.setActive(other === viewport && this.viewports.length > 1);
    this.display?.sync(); // h-ui: the toolbar shows the active viewport's display settings
    this._describeCurrent();
  }

  // ---- crosshair -------------------------------------------------------------------------
  indexChanged(viewport, source) {
    if (this.crosshair && source !== "crosshair" && source !== "init") {
      const here = worldToPlane(viewport.info, this.crosshair);
      this.crosshair = planeWorld(viewport.info, viewport.index, here.row, here.col);
    }
    this._drawCrosshair();
    if (viewport === this.active) this._describeCurrent();
  }

  /** A click or tap at image pixel (row, col): in MPR, move the other planes to that point. */
  pointAt(viewport, row, col) {
    if (this.layout !== "mpr" || !this.crosshair) return;
    this.crosshair = planeWorld(viewport.info, viewport.index, row, col);
    for (const other of this.viewports) {
      if (other === viewport) continue;
      other.setIndex(clampIndex(worldToPlane(other.info, this.crosshair).index, other.count), "crosshair");
    }
    this._drawCrosshair();
    this._describeCurrent();
  }

  _drawCrosshair() {
    if (this.layout !== "mpr") {
      for (const viewport of this.viewports) viewport.setLines([]);
      return;
    }
    for (const q of this.viewports) {
      const lines = [];
      for (const r of this.viewports) {
        if (r === q) continue;
        const segment = intersection(q.info, q.index, r.info, r.index);
        if (segment) lines.push({ ...segment, color: COLORS[r.plane], plane: r.plane });
      }
      q.setLines(lines);
    }
  }

  // ---- window / level --------------------------------------------------------------------
  _fillPresets() {
    const select = document.getElementById("preset");
    const options = [];
    if (this.defaultWindow) {
      options.push(["default", "0 · Default"]);
    } else {
      options.push(["default", this.isColor ? "Colour image" : "Default"]);
    }
    // any modality's list (CT presets, histogram-based MR/PET ones): the first nine have keys 1-9
    this.config.presets.forEach((preset, i) => options.push([String(i), i < 9 ? `${i + 1} · ${preset.name}` : preset.name]));
    options.push(["custom", "Custom"]);
    for (const [value, label] of options) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      if (value === "custom") option.hidden = true;
      select.append(option);
    }
    select.disabled = this.isColor;
    select.addEventListener("change", () => {
      if (select.value === "default") this.resetWindow();
      else if (select.value !== "custom") this.applyPreset(Number(select.value));
    });
    this.presetSelect = select;
  }

  applyPreset(number) {
    const preset = this.config.presets[number];
    if (!preset) return;
    this.setWindow({ center: preset.center, width: preset.width }, preset.name, String(number));
  }

  resetWindow() {
    if (!this.defaultWindow && !this.window) return;
    this.window = this.defaultWindow;
    this.windowIsDefault = true;
    this.windowName = "Default";
    this._windowChanged("default");
    this._requestAll();
  }

  setWindow(window, name = "Custom", option = "custom") {
    if (this.isColor) return;
    this.window = roundWindow(window);
    this.windowIsDefault = false;
    this.windowName = name;
    this._windowChanged(option);
    this._requestAll();
  }

  /** Right-drag: left/right changes the width, up/down the centre; the screen follows at once. */
  dragWindow(dx, dy) {
    if (this.isColor) return;
    const base = this.window || { center: 0, width: 1 };
    const width = Math.max(0.01, base.width * Math.exp(dx * 0.005));
    const center = base.center + dy * Math.max(base.width, 1) * 0.004;
    this.window = { center, width };
    this.windowIsDefault = false;
    this.windowName = "Custom";
    this._windowChanged("custom");
    clearTimeout(this.windowTimer);
    this.windowTimer = setTimeout(() => this.commitWindow(), 140);
  }

  commitWindow() {
    clearTimeout(this.windowTimer);
    if (!this.window || this.windowIsDefault) return;
    this.window = roundWindow(this.window);
    this._windowChanged(this.presetSelect.value);
    this._requestAll();
  }

  _windowChanged(option) {
    this.presetSelect.value = option;
    const w = this.window;
    document.getElementById("wl-readout").textContent = w ? `W ${formatNumber(w.width)} L ${formatNumber(w.center)}` : "";
    for (const viewport of this.viewports) {
      viewport.preview();
      viewport.updateOverlay();
    }
  }

  _requestAll() {
    // the active viewport first: it is what the user is looking at
    const order = [this.active, ...this.viewports.filter((v) => v !== this.active)];
    for (const viewport of order) viewport.request();
  }

  // ---- zoom ------------------------------------------------------------------------------
  fitAll() {
    for (const viewport of this.viewports) viewport.fit();
  }

  reset() {
    this.stopCine();
    this.fitAll();
    this.resetWindow();
  }

  // ---- cine ------------------------------------------------------------------------------
  toggleCine() {
    if (this.cinePlaying) this.stopCine();
    else this.startCine();
  }

  startCine() {
    const viewport = this.active;
    if (!viewport || viewport.count < 2) return;
    this.cinePlaying = true;
    viewport.direction = 1;
    viewport.prefetch();
    this._syncToolbar();
    const fpsInput = document.getElementById("fps");
    const tick = async () => {
      while (this.cinePlaying && this.active === viewport) {
        const fps = Math.min(60, Math.max(1, Number(fpsInput.value) || 12));
        const started = performance.now();
        const next = (viewport.index + 1) % viewport.count;
        const key = viewport.key(next);
        // wait for the next image rather than skipping it
        for (let waited = 0; !this.loader.ready(key) && waited < 5000 && this.cinePlaying; waited += 20) await sleep(20);
        if (!this.cinePlaying) break;
        viewport.setIndex(next, "cine");
        await sleep(Math.max(0, 1000 / fps - (performance.now() - started)));
      }
      this.stopCine();
    };
    tick();
  }

  stopCine() {
    if (!this.cinePlaying) return;
    this.cinePlaying = false;
    this._syncToolbar();
  }

  // ---- panels ----------------------------------------------------------------------------
  showPanel(name) {
    this.panel = name;
    document.getElementById("panel-metadata").hidden = name !== "metadata";
    document.getElementById("panel-tags").hidden = name !== "tags";
    this._syncToolbar();
    if (name) {
      this.header.refresh(true);
      for (const viewport of this.viewports) requestAnimationFrame(() => viewport.view.fitted && viewport.fit());
    }
    if (name === "tags") document.getElementById("tag-search").focus({ preventScroll: true });
  }

  /** plane/index of the active image, and the crosshair point for reconstructions. */
  headerQuery() {
    const viewport = this.active;
    if (!viewport) return null;
    const query = { plane: viewport.plane, index: String(viewport.index) };
    if (this.crosshair && this.layout === "mpr") {
      const here = worldToPlane(viewport.info, this.crosshair);
      query.row = here.row.toFixed(1);
      query.col = here.col.toFixed(1);
    }
    return query;
  }

  _describeCurrent() {
    if (this.panel) this.header.refresh();
  }

  /** The "Current image" list of the metadata panel. */
  describeImage(header) {
    const viewport = this.active;
    const list = this.header.metaList;
    if (!viewport || !list) return;
    const info = viewport.info;
    const items = [
      ["Plane", this.planeLabel(viewport.plane)],
      ["Image", `${viewport.index + 1} of ${viewport.count}`],
      ["Size", `${viewport.size.w} × ${viewport.size.h} pixels`],
    ];
    if (info.pixel_mm) items.push(["Pixel size", `${info.pixel_mm.toFixed(3)} mm (square)`]);
    if (info.step_mm) items.push(["Spacing between images", `${info.step_mm.toFixed(3)} mm`]);
    if (this.window) items.push(["Window", `${this.windowName}: W ${formatNumber(this.window.width)} L ${formatNumber(this.window.center)}`]);
    if (header?.reconstruction) items.push(["Source", "reconstruction; nearest acquired image below"]);
    for (const row of this.header.metadataValues()) items.push([row.name, row.value]);
    list.replaceChildren();
    for (const [term, value] of items) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
  }

  // ---- toolbar and keys ------------------------------------------------------------------
  setTool(tool) {
    this.tool = tool;
    for (const viewport of this.viewports) viewport.setTool(tool);
    this._syncToolbar();
  }

  _syncToolbar() {
    const selected = this.panel || this.layout;
    for (const tab of document.querySelectorAll("[role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === selected));
    for (const button of document.querySelectorAll("#tools [data-tool]")) button.setAttribute("aria-pressed", String(button.dataset.tool === this.tool));
    const picker = document.getElementById("plane-picker");
    if (picker) {
      picker.hidden = this.layout !== "slices";
      for (const button of picker.querySelectorAll("button")) button.classList.toggle("active", button.dataset.plane === this.singlePlane);
    }
    const cine = document.getElementById("cine");
    cine.textContent = this.cinePlaying ? "❚❚ Pause" : "▶ Play";
    cine.setAttribute("aria-pressed", String(this.cinePlaying));
  }

  _bindToolbar() {
    for (const tab of document.querySelectorAll("[role=tab]")) {
      tab.addEventListener("click", () => {
        const name = tab.dataset.tab;
        if (name === "slices" || name === "mpr") {
          this._switchLayout(name);
        } else {
          this.showPanel(this.panel === name ? null : name);
        }
      });
    }
    document.getElementById("plane-picker")?.addEventListener("click", (event) => {
      const plane = event.target.closest("[data-plane]")?.dataset.plane;
      if (plane) this.setSinglePlane(plane);
    });
    document.getElementById("tools").addEventListener("click", (event) => {
      const tool = event.target.closest("[data-tool]")?.dataset.tool;
      if (tool) this.setTool(tool);
    });
    document.getElementById("fit").addEventListener("click", () => this.fitAll());
    document.getElementById("reset").addEventListener("click", () => this.reset());
    document.getElementById("cine").addEventListener("click", () => this.toggleCine());
    const help = document.getElementById("help");
    document.getElementById("help-open").addEventListener("click", () => help.showModal());
    help.querySelector("[data-close]").addEventListener("click", () => help.close());
    help.addEventListener("click", (event) => event.target === help && help.close());
  }

  _bindKeys() {
    document.addEventListener("keydown", (event) => {
      const field = event.target.closest("input, select, textarea, [contenteditable]");
      if ((field && field.type !== "range") || event.altKey) return;
      if (document.getElementById("help").open) return;
      const viewport = this.active;
      const key = event.key;
      const page = viewport ? Math.max(10, Math.round(viewport.count / 10)) : 10;
      const actions = {
        ArrowUp: () => viewport?.step(-1),
        ArrowLeft: () => viewport?.step(-1),
        ArrowDown: () => viewport?.step(1),
        ArrowRight: () => viewport?.step(1),
        PageUp: () => viewport?.step(-page),
        PageDown: () => viewport?.step(page),
        Home: () => viewport?.setIndex(0, "key"),
        End: () => viewport?.setIndex(viewport.count - 1, "key"),
        " ": () => this.toggleCine(),
        "+": () => viewport?.zoomAt(1.25),
        "=": () => viewport?.zoomAt(1.25),
        "-": () => viewport?.zoomAt(0.8),
        f: () => this.fitAll(),
        r: () => this.reset(),
        s: () => this._switchLayout("slices"),
        m: () => this._switchLayout("mpr"),
        a: () => this.setSinglePlane("axial"),
        c: () => this.setSinglePlane("coronal"),
        g: () => this.setSinglePlane("sagittal"),
        v: () => this._cycleViewport(),
        i: () => this.showPanel(this.panel === "metadata" ? null : "metadata"),
        t: () => this.showPanel(this.panel === "tags" ? null : "tags"),
        o: () => {
          this.container.classList.toggle("overlay-off");
          for (const viewport of this.viewports) if (viewport.view.fitted) viewport.fit(); // h-ui: phones fit around overlays
        },
        n: () => this.display.toggleInvert(), // h-ui
        k: () => this.display.nextColormap(), // h-ui
        "?": () => document.getElementById("help").showModal(),
        Escape: () => this.showPanel(null),
        0: () => this.resetWindow(),
      };
      for (let i = 1; i <= 9; i++) actions[String(i)] = () => this.applyPreset(i - 1);
      const action = actions[key] || actions[key.toLowerCase()];
      if (!action || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      action();
    });
  }

  _switchLayout(layout) {
    this.showPanel(null);
    if (layout !== this.layout && (layout !== "mpr" || this.isVolume)) this.setLayout(layout);
  }

  _cycleViewport() {
    if (this.viewports.length < 2) return;
    const next = (this.viewports.indexOf(this.active) + 1) % this.viewports.length;
    this.activate(this.viewports[next]);
  }

  _updateCacheBars() {
    for (const viewport of this.viewports) {
      const keys = [];
      const stride = Math.max(1, Math.floor(viewport.count / 120));
      for (let i = 0; i < viewport.count; i += stride) keys.push(viewport.key(i));
      viewport.updateCacheBar(this.loader.readyShare(keys));
    }
  }

  // ---- render status ---------------------------------------------------------------------
  setPill(text, bad = false) {
    const pill = document.getElementById("render-pill");
    pill.hidden = !text;
    pill.textContent = text || "";
    pill.classList.toggle("bad", bad);
  }

  async _watchStatus() {
    let status = this.series;
    while (["pending", "rendering"].includes(status.render_status)) {
      const share = status.images_total ? Math.floor((100 * status.images_done) / status.images_total) : 0;
      this.setPill(`Preparing images ${share}%`);
      await sleep(2500);
      try {
        status = await getJSON(this.urls.status);
      } catch {
        break;
      }
      if (status.images) {
        this.images = status.images;
        this.imagesAt = performance.now();
      }
      if (status.render_version !== this.version) {
        this.setPill("This series was updated: reload to see the new images", true);
        return;
      }
    }
    if (status.render_status === "failed") this.setPill("Some images of this series could not be prepared", true);
    else this.setPill("");
  }
}

function roundWindow(window) {
  const round = (value) => (Math.abs(window.width) >= 20 ? Math.round(value) : Math.round(value * 100) / 100);
  return { center: round(window.center), width: Math.max(round(window.width), 0.01) };
}

const config = JSON.parse(document.getElementById("viewer-config").textContent);
window.dicomViewer = new Viewer(config);
